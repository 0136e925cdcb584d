"""Synthetic runs clustered like NOVA: raw answers per slice and their per-case tables.

Why: the statistics need data whose slices share their case (one difficulty per case, one
diagnosis per case, the model's mistakes correlated within it) and whose answers exercise
every metric (boxes in any order with duplicates and false positives, captions with
keywords, normal statements and no reference, ranked diagnoses with unseen labels).
Deterministic from the seeds; the case structure is the caller's (e.g. NOVA's case_ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nova_mlflow.metrics.captioning import MODALITY_TERMS
from nova_mlflow.metrics.matching import Verdict
from nova_mlflow.schemas import Box, LocalizationPrediction
from nova_mlflow.scoring import captioning, diagnosis, localization

CLINICAL = """lesion mass tumor edema hemorrhage cyst enhancement hyperintensity infarct atrophy
glioma meningioma abscess calcification nodule necrosis cortex cerebellum thalamus frontal
parietal temporal occipital pons ventricle""".split()  # noqa: SIM905 (a word list reads best as text)
MODALITY = sorted(MODALITY_TERMS - {"t1w", "t2w"})  # sorted: a set's order changes per process
TERMS = ("white matter", "mass effect", "corpus callosum", "basal ganglia", "midline shift")
FILLER = "the a of with in and left right image shows showing large small".split()  # noqa: SIM905
NORMAL = ("no abnormality is seen", "the brain is unremarkable")
N_LABELS = 120


@dataclass
class Slice:
    """One slice's inputs and a model's answers to the three tasks."""

    filename: str
    case_id: str
    golds: list[Box]
    preds: list[Box]
    gt_caption: str
    pred_caption: str
    meteor: float
    truth: str
    rank: int | None
    pred_label: str | None
    has_reference: bool


def _box(rng: np.random.Generator) -> Box:
    x, y = rng.uniform(10, 380, 2)
    w, h = rng.uniform(15, 110, 2)
    return Box(x1=x, y1=y, x2=min(x + w, 479), y2=min(y + h, 479))


def _jitter(b: Box, scale: float, rng: np.random.Generator) -> Box:
    j = rng.normal(0, scale, 4) * np.array([b.width, b.height, b.width, b.height])
    x1, y1, x2, y2 = b.x1 + j[0], b.y1 + j[1], b.x2 + j[2], b.y2 + j[3]
    return Box(x1=min(x1, x2), y1=min(y1, y2), x2=max(x1, x2), y2=max(y1, y2)).clip(480, 480)


def _caption(rng: np.random.Generator) -> str:
    parts = list(rng.choice(CLINICAL, rng.integers(3, 9))) + list(rng.choice(MODALITY, 2))
    parts += list(rng.choice(FILLER, rng.integers(2, 7)))
    if rng.random() < 0.5:
        parts.append(str(rng.choice(TERMS)))
    rng.shuffle(parts)
    text = " ".join(parts)
    return f"{text}. {rng.choice(NORMAL)}" if rng.random() < 0.1 else text


def _answer_caption(gt: str, keep: float, rng: np.random.Generator) -> str:
    if rng.random() < 0.04:
        return ""  # no answer
    if rng.random() < 0.06:
        return str(rng.choice(NORMAL))
    toks = [t for t in gt.split() if rng.random() < keep]
    toks += list(rng.choice(CLINICAL + MODALITY + FILLER, rng.integers(0, 6)))
    return " ".join(toks)


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def case_world(case_ids: Sequence[str], seed: int = 0) -> dict[str, dict]:
    """What every run shares per case: difficulty, truth label, whether it names one."""
    rng = np.random.default_rng(seed)
    return {c: {"difficulty": float(rng.normal()), "truth": f"label {rng.integers(N_LABELS)}",
                "has_reference": bool(rng.random() > 0.02)}
            for c in sorted(set(case_ids))}


def simulate_run(case_ids: Sequence[str], skill: float, seed: int, world_seed: int = 0) -> list[Slice]:
    """A model of the given skill answering every slice (slice k of a case = k-th listing)."""
    world = case_world(case_ids, world_seed)
    truth_rng = np.random.default_rng(world_seed + 1)  # gold boxes and captions: run-independent
    rng = np.random.default_rng(seed)
    seen: dict[str, int] = {}
    out = []
    for c in case_ids:
        seen[c] = seen.get(c, 0) + 1
        case = world[c]
        ease = skill - case["difficulty"]
        golds = [_box(truth_rng) for _ in range(truth_rng.choice(4, p=[0.05, 0.75, 0.15, 0.05]))]
        gt_caption = "" if truth_rng.random() < 0.01 else _caption(truth_rng)
        preds = [_jitter(g, 0.25 / (1 + max(ease, -0.5)), rng) for g in golds
                 if rng.random() < _sigmoid(ease)]
        preds += [_box(rng) for _ in range(rng.poisson(0.6))]
        if preds and rng.random() < 0.1:
            preds.append(preds[0])  # a repeated box: a false positive after the first
        rng.shuffle(preds)  # type: ignore[arg-type]
        keep = _sigmoid(ease - 0.5)
        u = rng.random()
        rank = 1 if u < _sigmoid(ease - 1) else (int(rng.integers(2, 6)) if u < _sigmoid(ease) else None)
        answered = rng.random() > 0.03
        label = (case["truth"] if rank == 1 else f"label {rng.integers(N_LABELS)}"
                 if rng.random() < 0.7 else f"unseen {rng.integers(40)}") if answered else None
        out.append(Slice(f"{c}_{seen[c]:03d}.png", c, golds, preds, gt_caption,
                         _answer_caption(gt_caption, keep, rng), float(rng.uniform(0, keep)),
                         case["truth"], rank if answered else None, label,
                         case["has_reference"]))
    return out


def _diagnoses(s: Slice) -> tuple[list[str], list[Verdict]]:
    """Five ranked answers: the predicted label first, the truth at its rank."""
    if s.pred_label is None:
        return [], []
    preds = [s.pred_label] + [f"other {k}" for k in range(2, 6)]
    if s.rank is not None and s.rank > 1:
        preds[s.rank - 1] = s.truth
    return preds, [Verdict(k + 1 == s.rank, "synthetic") for k in range(len(preds))]


def tables(slices: Sequence[Slice]) -> dict[str, pd.DataFrame]:
    """Per-case tables of one run, built by the scoring layer's own `case_row` functions."""
    loc, cap, dx = [], [], []
    for s in slices:
        key = {"filename": s.filename, "case_id": s.case_id}
        pred = LocalizationPrediction(boxes=s.preds, as_written=[b.as_list() for b in s.preds])
        loc.append(key | localization.case_row(pred, s.golds))
        cap.append(key | captioning.case_row(s.gt_caption, s.pred_caption, s.meteor))
        preds, verdicts = _diagnoses(s)
        dx.append(key | diagnosis.case_row(preds, verdicts, s.truth, s.rank, s.pred_label,
                                           s.has_reference))
    return {"localization": pd.DataFrame(loc), "captioning": pd.DataFrame(cap),
            "diagnosis": pd.DataFrame(dx)}


def nova_like_case_ids(n_cases: int = 281, seed: int = 0) -> list[str]:
    """Case ids with NOVA-like slice counts (1 to 17, mean ~3.2) for data-free tests."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(1 + rng.geometric(0.45, n_cases) - 1 + rng.poisson(0.6, n_cases), 17)
    return [f"case{c:04d}" for c in range(n_cases) for _ in range(int(sizes[c]))]
