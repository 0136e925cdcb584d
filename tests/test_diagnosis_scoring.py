"""Task 3 scoring: Top-k from ranks, coverage and entropy by hand, the per-case table, the
matcher as a plug (a judge-like fake), Table 3 / Figure 6 / definitions, and the whole path
through `nova-mlflow evaluate` with answers whose truth sits at rank 1, rank 3 or nowhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.metrics.matching import OfflineMatcher, Verdict
from nova_mlflow.metrics import diagnosis as dx
from nova_mlflow.schemas import Answer, Case, Task
from nova_mlflow.report import diagnosis as rd
from nova_mlflow.scoring import diagnosis as sd
from nova_mlflow.scoring.common import ScoreContext

from conftest import run_store

# --- pure metrics ----------------------------------------------------------------------------

def test_top_k_counts_every_case():
    ranks = [1, 3, None, 5, 2, None]
    assert dx.top_k(ranks, 1) == pytest.approx(1 / 6)
    assert dx.top_k(ranks, 3) == pytest.approx(3 / 6)
    assert dx.top_k(ranks, 5) == pytest.approx(4 / 6)
    assert dx.top_k([], 5) == 0.0
    assert dx.first_match_rank([False, False, True, True]) == 3
    assert dx.first_match_rank([]) is None


def test_entropy_and_coverage_by_hand():
    assert dx.entropy_bits(["a", "b", "c", "d"]) == pytest.approx(2.0)
    assert dx.entropy_bits(["a"] * 7) == 0.0
    assert dx.entropy_bits([]) == 0.0
    # p = (1/2, 1/4, 1/4): H = 0.5*1 + 2*0.25*2 = 1.5 bits
    assert dx.entropy_bits(["a", "a", "b", "c"]) == pytest.approx(1.5)
    assert dx.coverage(["a", "x", "a"], ["a", "b", "c", "d"]) == pytest.approx(0.25)
    assert dx.coverage([], ["a"]) == 0.0 and dx.coverage(["a"], []) == 0.0
    assert dx.rank_frequency(["b", "a", "b", "c", "b", "a"]) == [3, 2, 1]


# --- score() on hand-made cases ---------------------------------------------------------------

def _case(i: int, truth: str) -> Case:
    return Case(filename=f"case{i:04d}_001.png", case_id=f"case{i:04d}", scan_id=1,
                image_path=Path(f"/nowhere/case{i:04d}_001.png"), final_diagnosis=truth)


def _answers(cases: list[Case], texts: list[str | None], **kw) -> dict:
    return {(c.filename, Task.diagnosis): Answer(filename=c.filename, task=Task.diagnosis,
                                                 text=t, **kw)
            for c, t in zip(cases, texts) if t is not None}


TRUTHS = ["Glioblastoma", "Glioblastoma", "Multiple sclerosis", "Meningioma", "Cerebral abscess",
          "Colloid cyst"]
TEXTS = [
    "1. GBM\n2. Metastasis",                       # rank 1 via abbreviation
    "1. Lymphoma\n2. Abscess\n3. Glioblastoma",    # rank 3
    "1. Meningioma\n2. ADEM",                      # truth absent; top-1 names another case's label
    "I cannot provide a diagnosis.",               # refusal = parse failure
    None,                                          # missing
    "1. Cerebral metastases\n2. Epidermoid cyst",  # absent; names no GT label either
]


def test_score_ranks_table_and_label_metrics():
    cases = [_case(i, t) for i, t in enumerate(TRUTHS)]
    ts = sd.score(cases, _answers(cases, TEXTS, model="m"), ScoreContext(model="m"))
    m, t = ts.metrics, ts.table
    assert list(t["rank"]) == [1, 3, 0, 0, 0, 0]
    assert m["top1"] == pytest.approx(1 / 6) and m["top5"] == pytest.approx(2 / 6)
    assert (m["n_cases"], m["answered"], m["parse_failures"], m["missing"]) == (6, 4, 1, 1)
    assert list(t["status"]) == ["answered", "answered", "answered", "parse_failure", "missing",
                                 "answered"]
    # per-prediction verdicts and reasons
    assert list(t.loc[1, ["match1", "match2", "match3", "match4"]]) == ["no", "no", "yes", ""]
    assert t.loc[0, "pred1"] == "GBM" and "glioblastoma" in t.loc[0, "reason1"]
    assert t.loc[3, "error"].startswith("refusal") and t.loc[3, "pred1"] == ""
    assert set(t["matcher"]) == {"offline"}
    # predicted labels (top-1): own truth if matched, else a GT label it names, else its text
    assert list(t["predicted_label"]) == ["Glioblastoma", "lymphoma", "Meningioma", "", "",
                                          "cerebral metastasis"]
    # GT labels: 5 distinct; predicted labels reach Glioblastoma and Meningioma -> 2/5
    assert m["coverage"] == pytest.approx(2 / 5)
    assert m["entropy"] == pytest.approx(2.0)          # 4 labels, one case each
    p = [2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6]
    assert m["gt_entropy"] == pytest.approx(-sum(x * math.log2(x) for x in p))
    assert "Coverage" in rd.definitions(ts) and "log2(5)" in rd.definitions(ts)


class CountingJudge:
    """A judge stand-in: one batch call per scoring, its own verdicts and reasons."""

    name = "fake-judge"

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str]]] = []

    def match(self, prediction: str, truth: str) -> Verdict:
        return self.match_many([(prediction, truth)])[0]

    def match_many(self, pairs):
        self.batches.append(list(pairs))
        return [Verdict(p.lower().startswith(t.lower()[:4]), f"judge says {p!r} vs {t!r}")
                for p, t in pairs]


def test_a_judge_plugs_in_through_the_matcher_interface():
    cases = [_case(i, t) for i, t in enumerate(TRUTHS)]
    judge = CountingJudge()
    ts = sd.score(cases, _answers(cases, TEXTS), ScoreContext(), matcher=judge)
    assert len(judge.batches) == 1 and len(judge.batches[0]) == 2 + 3 + 2 + 2
    # "GBM" is no match for this judge, "Glioblastoma" at rank 3 is
    assert list(ts.table["rank"]) == [0, 3, 0, 0, 0, 0]
    assert ts.table.loc[1, "reason3"].startswith("judge says")
    assert set(ts.table["matcher"]) == {"fake-judge"} and "fake-judge" in rd.definitions(ts)


def test_unknown_judge_is_refused_before_scoring():
    cases = [_case(0, "Glioblastoma")]
    with pytest.raises(ValueError, match="not available"):
        sd.score(cases, _answers(cases, ["1. GBM"]), ScoreContext(judge="gpt-4o"))


def test_no_answers_at_all():
    cases = [_case(i, t) for i, t in enumerate(TRUTHS)]
    ts = sd.score(cases, {}, ScoreContext())
    assert ts.metrics["top1"] == ts.metrics["top5"] == ts.metrics["coverage"] == 0.0
    assert ts.metrics["entropy"] == 0.0 and ts.metrics["gt_entropy"] > 0
    assert ts.metrics["missing"] == 6


# --- files -----------------------------------------------------------------------------------

def test_artifacts_table3_figure6_definitions(tmp_path):
    from PIL import Image

    cases = [_case(i, t) for i, t in enumerate(TRUTHS)]
    ts = sd.score(cases, _answers(cases, TEXTS), ScoreContext(model="my-model"))
    files = rd.artifacts(ts, cases, tmp_path).files
    names = {f.name for f in files}
    assert {"table3_diagnosis.csv", "table3_diagnosis.md", "table3_diagnosis.html",
            "diagnosis_definitions.md", "diagnosis_label_frequencies.csv",
            "figure6_diagnosis_frequencies.png"} <= names
    t3 = pd.read_csv(tmp_path / "table3_diagnosis.csv", dtype=str).fillna("")
    assert list(t3["model"])[:4] == ["my-model", "Gemini 2.0 Flash", "GPT-4o", "Qwen2.5-VL-72B"]
    assert t3.loc[0, "source"] == "this run" and t3.loc[1, "source"].startswith("reported by")
    assert list(t3.columns[2:6]) == ["Top-1", "Top-5", "Coverage", "Entropy"]
    assert t3.loc[0, "Top-1"] == "16.7" and t3.loc[0, "Top-5"] == "33.3"
    assert t3.loc[2, ["Top-1", "Top-5", "Coverage", "Entropy"]].tolist() == \
        ["24.2", "38.4", "31.9", "7.64"]
    assert t3.loc[4, "model"].startswith("ground truth") and t3.loc[4, "Top-1"] == ""
    assert "class=\"paper\"" in (tmp_path / "table3_diagnosis.html").read_text()
    defs = (tmp_path / "diagnosis_definitions.md").read_text()
    assert "Shannon entropy" in defs and "top-1" in defs and "offline" in defs
    freq = pd.read_csv(tmp_path / "diagnosis_label_frequencies.csv")
    assert freq["ground_truth"].sum() == len(cases) and freq["predicted"].sum() == 4
    with Image.open(tmp_path / "figure6_diagnosis_frequencies.png") as im:
        assert im.size[0] > 600 and im.size[1] > 300


def test_gt_entropy_on_the_real_metadata(real_metadata):
    from nova_mlflow.data import load_dataset

    cases = load_dataset(real_metadata, check_images=False).cases
    ts = sd.score(cases, {}, ScoreContext())
    assert len({sd.label_of(c.final_diagnosis) for c in cases}) == 259
    # over the 862 slices whose truth names a diagnosis (258 labels; the 44 "Final Diagnosis
    # not found." slices are no label); over all 906 slices and 259 strings it was 7.589
    assert ts.metrics["gt_entropy"] == pytest.approx(7.682, abs=5e-4)
    assert ts.metrics["no_reference"] == 44
    assert ts.metrics["gt_entropy"] < math.log2(259)


# --- the whole path: nova-mlflow evaluate --------------------------------------------------

DISTRACTORS = ["Hepatic encephalopathy", "Pituitary adenoma", "Vestibular schwannoma",
               "Moyamoya disease", "Medulloblastoma"]
VARIANTS = {"Multiple sclerosis": "MS", "Glioblastoma": "GBM", "Cavernous malformation":
            "Cavernoma", "Acute disseminated encephalomyelitis": "ADEM",
            "Progressive multifocal leukoencephalopathy": "PML", "Primary CNS lymphoma": "PCNSL",
            "Brain metastases": "Cerebral metastasis"}


def _evaluate(tmp_path, demo_dir, rows):
    f = tmp_path / "dx.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs", str(f),
                                    "--model", "gpt-4o", "--json"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_evaluate_gives_exact_top1_and_top5(tmp_path, demo_dir):
    """Truth at rank 1 (i % 4 == 0), rank 3 (== 1), absent (== 2), no line at all (== 3)."""
    from nova_mlflow.data import load_dataset

    cases = load_dataset(demo_dir).cases
    m = OfflineMatcher()
    for c in cases:  # the distractors must not name any demo diagnosis
        assert not any(m.match(d, c.final_diagnosis).match for d in DISTRACTORS)
    rows, expect = [], {1: 0, 3: 0, None: 0}
    for i, c in enumerate(cases):
        truth = VARIANTS.get(c.final_diagnosis, c.final_diagnosis.upper())
        ranked = {0: [truth] + DISTRACTORS[:4], 1: DISTRACTORS[:2] + [truth] + DISTRACTORS[2:4],
                  2: DISTRACTORS}.get(i % 4)
        if ranked is None:
            continue
        expect[{0: 1, 1: 3, 2: None}[i % 4]] += 1
        rows.append({"filename": c.filename, "task": "diagnosis",
                     "text": "\n".join(f"{k}. {d}" for k, d in enumerate(ranked, start=1))})
    n = len(cases)
    metrics = _evaluate(tmp_path, demo_dir, rows)
    assert expect[1] > 0 and expect[3] > 0 and expect[None] > 0
    assert metrics["diagnosis/top1"] == pytest.approx(expect[1] / n)
    assert metrics["diagnosis/top5"] == pytest.approx((expect[1] + expect[3]) / n)
    assert metrics["diagnosis/missing"] == n - len(rows)
    assert metrics["diagnosis/answered"] == len(rows)
    for k in ("coverage", "entropy", "gt_entropy"):
        assert f"diagnosis/{k}" in metrics

    client = run_store(tmp_path)
    run = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])][0]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "results")}
    for name in ("table3_diagnosis.csv", "table3_diagnosis.md", "table3_diagnosis.html",
                 "diagnosis_definitions.md", "figure6_diagnosis_frequencies.png"):
        assert f"results/{name}" in arts
    table = json.loads(Path(client.download_artifacts(
        run.info.run_id, "tables/diagnosis_cases.json", str(tmp_path))).read_text())
    df = pd.DataFrame(table["data"], columns=table["columns"])
    assert sorted(df["rank"].value_counts().to_dict().items()) == \
        sorted({0: n - expect[1] - expect[3], 1: expect[1], 3: expect[3]}.items())
    assert {"pred5", "match5", "reason5", "status"} <= set(df.columns)
