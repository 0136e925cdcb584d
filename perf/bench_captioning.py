"""Benchmark: Task 2 scoring of all 906 real NOVA cases, and loading the bundled WordNet.

Answers are the expert captions given to the wrong case (a seeded shuffle), so lengths and
vocabulary are realistic and matching does real work. Timed: loading the WordNet reader
(the WordNet 3.0 shipped with the package; bench_wordnet.py compares it with nltk's reader),
METEOR's first pass (WordNet synsets not yet loaded) and its steady state, BLEU, keywords,
status, language statistics and the whole task through scoring.score. Its section of
BENCHMARKS.md (between the captioning-metrics markers) is replaced, other sections kept.

    .venv/bin/python perf/bench_captioning.py [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import machine, today, write_section
from nova_mlflow import wordnet as nova_wordnet
from nova_mlflow.data import load_dataset
from nova_mlflow.metrics import captioning as cap
from nova_mlflow.metrics.language import language_stats, words
from nova_mlflow.metrics.status import read_status
from nova_mlflow.schemas import Answer, Task
from nova_mlflow.scoring import ScoreContext, score

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nova-metadata"
SECTION = "captioning-metrics"  # the markers of its BENCHMARKS.md section
SEED = 20250520


def timed(fn: Callable[[], object], repeats: int, warm: bool = True) -> tuple[float, float]:
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def fmt(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{1000 * seconds:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args()

    cases = load_dataset(DATA, check_images=False).cases
    refs = [c.caption for c in cases]
    shuffled = [t for t in refs if t]
    random.Random(SEED).shuffle(shuffled)
    it = iter(shuffled)
    preds = [next(it) if t else "" for t in refs]  # a wrong-case caption for every reference
    with_ref = [(r, p) for r, p in zip(refs, preds) if r]
    ref_tok = [words(r) for r, _ in with_ref]
    hyp_tok = [words(p) for _, p in with_ref]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows: list[tuple[str, float, float]] = []

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NOVA_MLFLOW_CACHE"] = tmp
        rows.append(("WordNet reader: load the WordNet 3.0 shipped with the package",
                     *timed(lambda: nova_wordnet.load("bundled"), 3, warm=False)))
        wn, _ = nova_wordnet.load("bundled")
        t0 = time.perf_counter()
        cap.meteor_scores(ref_tok, hyp_tok, wn)
        first = time.perf_counter() - t0
        rows.append((f"METEOR, {len(with_ref)} captions, first pass (synsets read from disk)",
                     first, first))
        rows.append((f"METEOR, {len(with_ref)} captions, steady state",
                     *timed(lambda: cap.meteor_scores(ref_tok, hyp_tok, wn), args.repeats)))
        rows.append(("BLEU-4 (nltk corpus_bleu)",
                     *timed(lambda: cap.corpus_bleu4(ref_tok, hyp_tok), args.repeats)))
        rows.append(("Keyword extraction, both sides",
                     *timed(lambda: [cap.keywords(t) for pair in with_ref for t in pair],
                            args.repeats)))
        rows.append(("Binary status, both sides",
                     *timed(lambda: [read_status(t) for pair in with_ref for t in pair],
                            args.repeats)))
        rows.append(("Language statistics, both sides",
                     *timed(lambda: (language_stats(refs), language_stats(preds)), args.repeats)))
        answers = {(c.filename, Task.captioning): Answer(filename=c.filename, task=Task.captioning,
                                                         text=p or None)
                   for c, p in zip(cases, preds) if p}
        nova_wordnet.cache_clear()
        nova_wordnet.wordnet()  # the cached reader scoring uses
        result: dict = {}

        def whole() -> None:
            result.update(score(cases, answers, [Task.captioning], ScoreContext())
                          .tasks[Task.captioning].metrics)

        rows.append(("Whole task via scoring.score (reader cached): parse, all metrics, table",
                     *timed(whole, args.repeats)))

    m = result
    lines = [
        "## Captioning metrics", "",
        (f"`perf/bench_captioning.py`, run {today()} on {machine()}, "
         f"nltk {version('nltk')}, WordNet {wn.get_version()} shipped with nova-mlflow "
         f"(nova_mlflow/wordnet); load average at the start {load:.1f} "
         "(a shared machine: other work inflates the times)."),
        (f"Input: the real NOVA metadata, {len(cases)} cases, {len(with_ref)} with an expert "
         "caption; each answer is the expert caption of another case (seeded shuffle), so "
         "lengths and vocabulary are realistic. Median of the repeats after one warm-up "
         "(cold WordNet: 3 fresh cache directories, no warm-up)."),
        "",
        "| what is timed | median | min |",
        "|---|---:|---:|",
        *[f"| {what} | {fmt(med)} | {fmt(mn)} |" for what, med, mn in rows],
        "",
        (f"Scores of this input (a sanity check, not a result): clinical F1 "
         f"{100 * m['clinical_f1']:.2f}, modality F1 {100 * m['modality_f1']:.2f}, BLEU "
         f"{100 * m['bleu']:.2f}, METEOR {100 * m['meteor']:.2f}, binary F1 "
         f"{100 * m['binary_f1']:.2f}."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
