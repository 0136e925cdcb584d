"""Synthetic NOVA datasets of any size in the real CSV layout, deterministically.

Rows: the text and boxes of the real NOVA metadata (../shared/data/nova-metadata, 906 rows)
when it is present, else of the offline demo set (48 rows); row i is source row i mod m, and
rows past the first m get new case ids and filenames ("case0183r1_001.png") and a marked
clinical history (so no two copies send the same diagnosis request), so 9,060 cases are the
906 real ones ten times over. bbox_gold / bbox_raters are the source's own
Python-literal strings, so the normal reader validates them.

Images: the demo set's 480 x 480 PNGs (built offline from nilearn's MNI template), image i
being demo image i mod 48, each copy made unique by a tEXt chunk naming its file (valid PNG,
same pixels, its own sha256), so content digests and response-cache keys are per case, as
with real data, and the request payload has the real size (~130 kB).

    python perf/synthetic.py 906 [--dest DIR] [--text real|demo]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf import ROOT, workdir

VERSION = "synthetic-v2"  # v2: copies past the first block have their own clinical history
REAL_CSV = ROOT.parent / "shared" / "data" / "nova-metadata" / "NOVA_metadata.csv"
CSV_NAME = "NOVA_metadata.csv"
COLUMNS = ("filename", "caption", "case_id", "scan_id", "title", "publication_date",
           "clinical_history", "differential_diagnosis", "final_diagnosis", "link",
           "bbox_gold", "bbox_raters")
MARKER = ".complete"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Canned model answers, one per task: cheap for the fake server, parseable by the package.
CANNED = {
    "localization": "[[118.0, 142.0, 221.0, 259.0], [300.0, 80.0, 352.0, 131.0]]",
    "captioning": ("Axial FLAIR image shows a hyperintense lesion in the right frontal lobe "
                   "with surrounding oedema."),
    "diagnosis": ("1. Glioblastoma\n2. Brain metastases\n3. Primary CNS lymphoma\n"
                  "4. Cerebral abscess\n5. Multiple sclerosis"),
}


def canned_script(route: str, model: str, prompt: str, image: bytes | None) -> str:
    """FakeModelServer script: a fixed answer per task (no detector, no per-image work)."""
    from nova_mlflow.testing.fake_server import guess_task

    return CANNED.get(guess_task(prompt), CANNED["captioning"])


def tagged_png(png: bytes, text: str) -> bytes:
    """The same PNG with a tEXt chunk after IHDR (valid CRC): same pixels, new bytes."""
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG with IHDR first")
    ihdr_end = 8 + 4 + 4 + 13 + 4
    data = b"Comment\x00" + text.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def source_rows(text: str = "auto") -> tuple[str, list[dict[str, str]]]:
    """('real' | 'demo', rows as CSV string dicts)."""
    if text in ("auto", "real") and REAL_CSV.exists():
        with open(REAL_CSV, encoding="utf-8", newline="") as fh:
            return "real", [dict(r) for r in csv.DictReader(fh)]
    if text == "real":
        raise SystemExit(f"real NOVA metadata not found at {REAL_CSV}")
    from nova_mlflow.data.demo import CSV_NAME as DEMO_CSV
    from nova_mlflow.data.demo import demo_root

    with open(demo_root() / DEMO_CSV, encoding="utf-8", newline="") as fh:
        return "demo", [dict(r) for r in csv.DictReader(fh)]


def demo_images() -> list[bytes]:
    from nova_mlflow.data.demo import demo_root

    return [p.read_bytes() for p in sorted((demo_root() / "images").glob("*.png"))]


def _rename(row: dict[str, str], block: int) -> dict[str, str]:
    """Row of copy `block` (0: the source row): new case id and filename, and a clinical
    history of its own, so its diagnosis request is its own (as a real case's would be)
    instead of a repeat that the response cache would answer from another case."""
    if block == 0:
        return row
    case_id = f"{row['case_id']}r{block}"
    suffix = row["filename"].rsplit("_", 1)[-1] if "_" in row["filename"] else f"{block}.png"
    history = f"{row.get('clinical_history', '')} (synthetic copy {block})".strip()
    return {**row, "case_id": case_id, "filename": f"{case_id}_{suffix}",
            "clinical_history": history}


def build(n: int, dest: Path | None = None, *, text: str = "auto") -> Path:
    """Write (or reuse) an n-case dataset; returns its directory (CSV + images/)."""
    kind, rows = source_rows(text)
    dest = Path(dest or workdir() / "data" / f"synthetic-{kind}-{n}")
    stamp = json.dumps({"version": VERSION, "n": n, "text": kind})
    marker = dest / MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == stamp:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        images = demo_images()
        (tmp / "images").mkdir()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n",
                                extrasaction="ignore")
        writer.writeheader()
        for i in range(n):
            row = _rename(rows[i % len(rows)], i // len(rows))
            writer.writerow({k: row.get(k, "") for k in COLUMNS})
            png = tagged_png(images[i % len(images)], f"nova-synthetic {VERSION} {row['filename']}")
            (tmp / "images" / row["filename"]).write_bytes(png)
        (tmp / CSV_NAME).write_text(buf.getvalue(), encoding="utf-8")
        (tmp / MARKER).write_text(stamp + "\n", encoding="utf-8")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def replay_file(dataset_dir: Path, path: Path | None = None,
                tasks: tuple[str, ...] = ("localization", "captioning", "diagnosis")) -> Path:
    """Answers JSONL (the `evaluate` / replay format) with the canned answer of every case."""
    path = Path(path or dataset_dir / "canned_answers.jsonl")
    if path.exists():
        return path
    with open(dataset_dir / CSV_NAME, encoding="utf-8", newline="") as fh:
        names = [r["filename"] for r in csv.DictReader(fh)]
    lines = [json.dumps({"filename": f, "task": t, "text": CANNED[t]}) + "\n"
             for t in tasks for f in names]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def canned_answers(cases, tasks) -> dict:
    """{(filename, task): Answer} with the canned texts, for scoring without any provider."""
    from nova_mlflow.schemas import Answer

    return {(c.filename, t): Answer(filename=c.filename, task=t, text=CANNED[t.value],
                                    model="gpt-4o", prompt_version="v1")
            for t in tasks for c in cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("--dest", type=Path, default=None)
    ap.add_argument("--text", choices=("auto", "real", "demo"), default="auto")
    a = ap.parse_args()
    print(build(a.n, a.dest, text=a.text))


if __name__ == "__main__":
    main()
