"""Benchmark: scoring all 906 real NOVA cases, per protocol (issue 3: "well under a second").

Predictions are the real metadata's 1068 gold boxes, jittered (seeded), some dropped and
some false positives added, so matching does real work. Each protocol is timed as the
median of several repeats; the figures, the machine and the date go into its section of
BENCHMARKS.md (between the localization-scoring markers; other sections kept).

    .venv/bin/python perf/bench_localization.py [--repeats 7] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import machine, today, write_section
from nova_mlflow.data import load_dataset
from nova_mlflow.metrics import localization as loc
from nova_mlflow.metrics.coco import coco_map
from nova_mlflow.schemas import Answer, Box, Case, Task
from nova_mlflow.scoring import ScoreContext, score

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nova-metadata"
SECTION = "localization-scoring"  # the markers of its BENCHMARKS.md section
SEED = 20250520


def jittered(cases: list[Case], seed: int = SEED) -> list[list[Box]]:
    """Per case: most gold boxes moved by ~15 % of their size, some dropped, some FPs added."""
    rng = np.random.default_rng(seed)
    out = []
    for c in cases:
        preds = []
        for b in c.gold_boxes:
            if rng.random() < 0.75:
                j = rng.normal(0, 0.15, 4) * np.array([b.width, b.height, b.width, b.height])
                x1, y1, x2, y2 = b.x1 + j[0], b.y1 + j[1], b.x2 + j[2], b.y2 + j[3]
                preds.append(Box(x1=min(x1, x2), y1=min(y1, y2), x2=max(x1, x2),
                                 y2=max(y1, y2)).clip(480, 480))
        for _ in range(rng.poisson(0.4)):
            x, y = rng.uniform(0, 400, 2)
            w, h = rng.uniform(15, 80, 2)
            preds.append(Box(x1=x, y1=y, x2=min(x + w, 480), y2=min(y + h, 480)))
        out.append(preds)
    return out


def coco_all_area_only(images: list[tuple[list[Box], list[Box]]]) -> dict[str, float]:
    """metrics.coco.coco_map with pycocotools' area ranges cut to "all" (the only one read).

    Not used by the package: timed here to show what metrics/coco.py could gain (the default
    four area ranges make COCOeval.evaluate match every image four times).
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from nova_mlflow.metrics.coco import THRESHOLDS, _mean_precision, coco_inputs

    gt, dets = coco_inputs(images)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.params.imgIds = [im["id"] for im in gt["images"]]
        ev.params.iouThrs = THRESHOLDS
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][:, :, 0, 0, -1]
    return {"coco_mAP30": _mean_precision(p[0:1]), "coco_mAP50": _mean_precision(p[1:2]),
            "coco_mAP50_95": _mean_precision(p[1:])}


def timed(fn: Callable[[], dict], repeats: int) -> tuple[float, float, dict]:
    fn()  # warm-up (imports, caches)
    times = []
    result: dict = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args()

    load = os.getloadavg()[0]  # before our own work adds to it
    cases = load_dataset(args.data, check_images=False).cases
    preds = jittered(cases)
    images = [(p, list(c.gold_boxes)) for p, c in zip(preds, cases)]
    by_name = [images[i] for i in sorted(range(len(cases)), key=lambda i: cases[i].filename)]
    answers = {(c.filename, Task.localization): Answer(
        filename=c.filename, task=Task.localization,
        text=json.dumps([[round(v, 2) for v in b.as_list()] for b in p])) for c, p in zip(cases, preds)}
    n_pred = sum(len(p) for p in preds)
    gt = sum(len(c.gold_boxes) for c in cases)

    rows = [
        ("NOVA protocol (mAP30/50/50-95, ACC50, TP/FP)", lambda: loc.nova_protocol(images)),
        ("COCO protocol (pycocotools, 11 IoU thresholds)", lambda: coco_map(by_name)),
        ("Precision/recall/F1 at 0.3 and 0.5", lambda: loc.prf_metrics(images)),
        ("COCO, area range 'all' only (not in the package; same numbers)",
         lambda: coco_all_area_only(by_name)),
        ("Whole task via scoring.score: parse 906 answers, NOVA + COCO + P/R/F1, per-case table",
         lambda: score(cases, answers, [Task.localization], ScoreContext()).metrics),
    ]
    results = []
    for name, fn in rows:
        med, best, res = timed(fn, args.repeats)
        results.append((name, med, best, res))
        print(f"{name:<68} median {med * 1000:8.1f} ms   min {best * 1000:8.1f} ms")
    nova, coco = results[0][3], results[1][3]
    assert results[3][3] == coco, "area-'all'-only COCO must give the package's numbers"
    print(f"sanity: NOVA mAP30 {nova['mAP30']:.4f}, TP30 {nova['TP30']:.0f}/{nova['GT']:.0f}, "
          f"FP30 {nova['FP30']:.0f}; COCO mAP30 {coco['coco_mAP30']:.4f}")

    lines = [
        "## Localization scoring", "",
        (f"`perf/bench_localization.py`, run {today()} on {machine()}, "
         f"numpy {version('numpy')}, pycocotools {version('pycocotools')}; load average at the "
         f"start {load:.1f} (a shared machine: other work inflates the times)."),
        (f"Input: the real NOVA metadata, {len(cases)} cases / {gt} gold boxes; predictions are the "
         f"gold boxes jittered by ~15 % of their size (seed {SEED}), 25 % dropped, plus random "
         f"false positives: {n_pred} boxes. Median of {args.repeats} repeats after one warm-up."),
        "", "| what is timed | median | min |", "|---|---:|---:|",
    ]
    lines += [f"| {name} | {med * 1000:.1f} ms | {best * 1000:.1f} ms |"
              for name, med, best, _ in results]
    lines += ["", (f"Scores of this input (a sanity check, not a result): NOVA mAP30 "
                   f"{100 * nova['mAP30']:.2f}, mAP50 {100 * nova['mAP50']:.2f}, TP30 "
                   f"{nova['TP30']:.0f}/{nova['GT']:.0f}, FP30 {nova['FP30']:.0f}; COCO mAP30 "
                   f"{100 * coco['coco_mAP30']:.2f}, mAP50 {100 * coco['coco_mAP50']:.2f}."),
              "Target (issue 3): well under a second per protocol.", ""]
    if not args.no_write:
        write_section(SECTION, "\n".join(lines))
        print(f"wrote the {SECTION} section of {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
