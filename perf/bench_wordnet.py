"""Benchmark: the per-process cost of WordNet for METEOR, bundled data vs nltk's reader.

Each measurement is a fresh Python process (the cost is paid once per process, so a warm
process would hide it) that imports nltk's METEOR and nova_mlflow.wordnet, loads the WordNet
chosen by NOVA_MLFLOW_WORDNET, makes a first `synsets` call and scores METEOR on the 906 real
NOVA captions (each against another case's caption, the seeded shuffle of
bench_captioning.py), timing each phase inside the process; the parent times the whole
process too. Sources: `bundled` (the shipped wordnet-3.0.txt.gz) and `/usr/share/wordnet`
(nltk's WordNetCorpusReader on the cached copy of Debian's files: the path before the bundled
data; the copy is made by an uncounted warm-up run). Runs alternate between the sources so
machine load hits both alike. Both must give the same mean METEOR, or the benchmark stops.

    .venv/bin/python perf/bench_wordnet.py [--repeats 7] [--data DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import (
    PYTHON,
    ROOT,
    end_meta,
    header,
    isolate,
    new_meta,
    spread,
    write_section,
)

SECTION = "wordnet"  # the markers of its BENCHMARKS.md section
DATA = ROOT.parent / "shared" / "data" / "nova-metadata"
SEED = 20250520  # bench_captioning.py's shuffle
DEBIAN = "/usr/share/wordnet"
SOURCES = {"bundled": "bundled data (wordnet-3.0.txt.gz)",
           DEBIAN: "nltk reader on the Debian copy"}
PHASES = [("import", "import nltk's METEOR + nova_mlflow.wordnet"),
          ("load", "load WordNet (`wordnet()`)"),
          ("first", "first `synsets` call"),
          ("meteor", "METEOR, 906 captions"),
          ("in_process", "all of the above"),
          ("process", "whole process, wall (interpreter start to exit)")]


def caption_pairs(data: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(references, hypotheses): every caption against another case's (seeded shuffle)."""
    from nova_mlflow.metrics.language import words

    with (data / "NOVA_metadata.csv").open(newline="", encoding="utf-8") as f:
        refs = [row["caption"] for row in csv.DictReader(f)]
    shuffled = [t for t in refs if t]
    random.Random(SEED).shuffle(shuffled)
    it = iter(shuffled)
    preds = [next(it) if t else "" for t in refs]
    pairs = [(words(r), words(p)) for r, p in zip(refs, preds) if r]
    return [r for r, _ in pairs], [p for _, p in pairs]


def child(data: Path) -> None:
    """One measured process: print its phase times (s), mean METEOR and peak RSS as JSON."""
    refs, hyps = caption_pairs(data)  # not timed: reading the CSV is not WordNet's cost
    t0 = time.perf_counter()
    from nltk.translate.meteor_score import meteor_score  # noqa: F401  (the import is timed)

    from nova_mlflow.metrics.captioning import meteor_scores
    from nova_mlflow.wordnet import wordnet, wordnet_source
    t1 = time.perf_counter()
    wn = wordnet()
    t2 = time.perf_counter()
    wn.synsets("lesions")
    t3 = time.perf_counter()
    scores = meteor_scores(refs, hyps, wn)
    t4 = time.perf_counter()
    import resource

    print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first": t3 - t2, "meteor": t4 - t3,
                      "in_process": t4 - t0, "n": len(scores),
                      "mean_meteor": sum(scores) / len(scores), "source": wordnet_source(),
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(source: str, data: Path) -> dict:
    env = dict(os.environ, NOVA_MLFLOW_WORDNET=source, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    out = subprocess.run([PYTHON, str(Path(__file__).resolve()), "--child", "--data",
                          str(data)], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    got = json.loads(out.stdout.strip().splitlines()[-1])
    got["process"] = wall
    return got


def data_size() -> str:
    from nova_mlflow.wordnet import bundled

    raw = bundled.DATA_FILE.read_bytes()
    import gzip

    return (f"{len(raw) / 1e6:.1f} MB compressed, {len(gzip.decompress(raw)) / 1e6:.1f} MB "
            "as text")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="fresh processes per source (>= 5)")
    ap.add_argument("--data", type=Path, default=DATA, help="directory of NOVA_metadata.csv")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.data)
        return
    if args.repeats < 5:
        ap.error("--repeats must be at least 5 (the figures are medians)")
    data = args.data.resolve()
    isolate("wordnet")  # the Debian copy goes to the bench work dir's cache, never ~/.cache
    meta = new_meta(("python perf/bench_wordnet.py " + " ".join(sys.argv[1:])).strip())
    runs: dict[str, list[dict]] = {s: [] for s in SOURCES}
    for s in SOURCES:  # warm-up, not counted: makes the Debian copy, fills the page cache
        measure(s, data)
    for i in range(args.repeats):
        for s in SOURCES:
            runs[s].append(measure(s, data))
            print(f"{i + 1}/{args.repeats} {s}: " + ", ".join(
                f"{k} {runs[s][-1][k]:.3f}" for k, _ in PHASES), file=sys.stderr, flush=True)
    end_meta(meta)
    means = {s: {round(r["mean_meteor"], 12) for r in rs} for s, rs in runs.items()}
    if len(set.union(*means.values())) != 1:
        sys.exit(f"the sources disagree on METEOR: {means}")
    bundled_src = runs["bundled"][0]["source"]
    if not bundled_src.startswith("bundled:"):
        sys.exit(f"the bundled run read {bundled_src}")
    med = {s: sorted(r["load"] + r["first"] for r in rs)[len(rs) // 2] for s, rs in runs.items()}
    n = runs["bundled"][0]["n"]
    lines = [
        "## WordNet for METEOR: bundled data vs nltk's reader (per process)", "",
        header(meta), "",
        (f"Each figure: median (min-max, n) over {args.repeats} fresh processes per source, "
         "alternating; phases timed inside the process. The work: import nltk's METEOR and "
         "nova_mlflow.wordnet, load WordNet, one `synsets` call, then METEOR on the "
         f"{n} real NOVA captions, each against another case's caption (seeded shuffle). "
         "Bundled: the shipped `nova_mlflow/wordnet/wordnet-3.0.txt.gz` "
         f"({data_size()}). nltk reader: `NOVA_MLFLOW_WORDNET={DEBIAN}`, nltk's "
         "WordNetCorpusReader on the cached copy of Debian's WordNet 3.0 (the copy itself "
         "made once, before the counted runs)."), "",
        "| phase | " + " | ".join(SOURCES.values()) + " |",
        "|---|" + "---:|" * len(SOURCES),
        *[f"| {label} | " + " | ".join(spread([r[k] for r in runs[s]]) for s in SOURCES) + " |"
          for k, label in PHASES],
        "| peak RSS | " + " | ".join(
            f"{sorted(r['rss_mib'] for r in runs[s])[len(runs[s]) // 2]:.0f} MiB"
            for s in SOURCES) + " |",
        "",
        (f"Load + first `synsets`: {med['bundled'] * 1000:.0f} ms bundled vs "
         f"{med[DEBIAN]:.2f} s with nltk's reader ({med[DEBIAN] / med['bundled']:.0f}x); "
         "target <= 1 s. Mean METEOR identical in every run of both sources "
         f"({next(iter(means['bundled'])):.12f}). The import line is mostly `import nltk` "
         "(which imports scipy and scikit-learn when they are installed), paid by METEOR "
         "with any WordNet. METEOR's own time is Porter stemming and nltk's morphy, each "
         "word's result kept for the rest of the call (`metrics.captioning.meteor_scores`; "
         "captions share most words); it is higher with nltk's reader, which reads and "
         "parses each synset's full data line (gloss, pointers) on first use."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
