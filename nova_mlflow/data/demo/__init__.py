"""Offline demo set: a small NOVA-like benchmark made from nilearn's bundled MNI152 template.

Why: the whole pipeline (load -> ask -> parse -> score -> MLflow) must run with no network
and no data-use agreement. Slices of the template get T1/T2/FLAIR looks from the tissue maps,
synthetic lesions with exactly known boxes are painted in, and captions/histories come from
per-diagnosis templates so localization, captioning and diagnosis are all meaningful but not
trivial. The layout is the real release's (metadata CSV + images/), so the normal reader
loads it. Everything is seeded: two builds give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from nova_mlflow.data.demo.content import DIAGNOSES, SEQ_WEIGHTS, box_strings, history
from nova_mlflow.data.demo.render import Slice, Templates, load_templates, render
from nova_mlflow.errors import InputError

DEMO_VERSION = "demo-v1"
CSV_NAME = "nova_demo_metadata.csv"
COLUMNS = ("filename", "caption", "case_id", "scan_id", "title", "publication_date",
           "clinical_history", "differential_diagnosis", "final_diagnosis", "link",
           "bbox_gold", "bbox_raters")
SEED = 20240611
MARKER = ".complete"
SLICES_PER_CASE = (2, 3, 1, 2)  # cycled over cases: 24 cases -> 48 slices
log = logging.getLogger("nova_mlflow")


def generate(tpl: Templates | None = None) -> list[tuple[dict[str, str], Slice]]:
    """All rows (CSV fields as strings) with their rendered slices, deterministically."""
    tpl = tpl or load_templates()
    rng = np.random.default_rng(SEED)
    dxs = [d for d in DIAGNOSES for _ in range(d.cases)]
    dxs = [dxs[i] for i in rng.permutation(len(dxs))]
    counts = [SLICES_PER_CASE[i % len(SLICES_PER_CASE)] for i in range(len(dxs))]
    planes = [("axial", "sagittal", "coronal")[i % 3] for i in range(sum(counts))]
    planes = [planes[i] for i in rng.permutation(len(planes))]
    seqs, p = list(SEQ_WEIGHTS), np.array(list(SEQ_WEIGHTS.values()))
    out = []
    for n, (dx, count) in enumerate(zip(dxs, counts)):
        case_id = f"case{9001 + n}"
        case_history = history(rng, dx)
        alt = dx.differential.split("; ")
        others = [alt[i] for i in rng.permutation(len(alt))[:rng.integers(2, 4)]]
        differential = [others[i] if i < len(others) else dx.name for i in rng.permutation(len(others) + 1)]
        date = f"{rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.{rng.integers(2015, 2024)}"
        for scan in range(1, count + 1):
            plane = planes.pop()
            mm = {"axial": rng.uniform(2, 52), "coronal": rng.uniform(-70, 38),
                  "sagittal": rng.choice([-1, 1]) * rng.uniform(14, 46)}[plane]
            sl = render(rng, tpl, dx, plane, float(mm), seqs[int(rng.choice(len(seqs), p=p / p.sum()))])
            gold, raters = box_strings(rng, sl.boxes)
            row = {"filename": f"{case_id}_{scan:03d}.png", "caption": sl.caption, "case_id": case_id,
                   "scan_id": str(scan), "title": dx.title, "publication_date": date,
                   "clinical_history": case_history, "differential_diagnosis": "; ".join(differential),
                   "final_diagnosis": dx.name, "link": f"https://example.org/nova-demo/{case_id}",
                   "bbox_gold": gold, "bbox_raters": raters}
            out.append((row, sl))
    return out


def _write(dest: Path) -> None:
    from PIL import Image

    (dest / "images").mkdir(parents=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row, sl in generate():
        writer.writerow(row)
        Image.fromarray(sl.image).save(dest / "images" / row["filename"], format="PNG", compress_level=3)
    (dest / CSV_NAME).write_bytes(buf.getvalue().encode("utf-8"))
    (dest / MARKER).write_text(DEMO_VERSION + "\n", encoding="utf-8")


def is_complete(root: Path) -> bool:
    marker = Path(root) / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == DEMO_VERSION


def _clear_stale(root: Path) -> None:
    """Remove an unfinished or older demo build, but never a directory holding other files."""
    if not root.exists():
        return
    ours = {CSV_NAME, "images", MARKER}
    if not root.is_dir() or not {p.name for p in root.iterdir()} <= ours:
        raise InputError("exists and is not a demo set; refusing to overwrite it", file=root)
    shutil.rmtree(root)


def build_demo(root: Path) -> Path:
    """Build the demo set into `root` and return it; a complete build of this version is kept.

    Files are written to a temporary sibling directory that is renamed into place at the end,
    so an interrupted build never leaves a half-written set behind.
    """
    root = Path(root).expanduser()
    if is_complete(root):
        return root
    _clear_stale(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    log.info("building demo set in %s", root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _write(tmp / "set")
        os.replace(tmp / "set", root)
    except OSError:
        if not is_complete(root):  # another process may have won the race; that is fine
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def demo_root(cache_dir: Path | None = None) -> Path:
    """Where the demo set lives (`<cache>/<DEMO_VERSION>`), built on first use. The cache is
    `cache_dir`, else the package's cache (paths.cache_dir: $NOVA_MLFLOW_CACHE, else the
    platform's user cache directory)."""
    from nova_mlflow.paths import cache_dir as default_cache

    return build_demo(Path(cache_dir or default_cache()).expanduser() / DEMO_VERSION)
