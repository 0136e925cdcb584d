"""Dataset loading: `demo`, a local directory in either NOVA layout, or hf://owner/name."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nova_mlflow.data.images import VerifiedPngs, verify_pngs
from nova_mlflow.data.layouts import (
    CSV_REQUIRED,
    PARQUET_REQUIRED,
    assumed_size,
    header_size,
    read_csv_layout,
    read_parquet_layout,
    read_text_table,
)
from nova_mlflow.errors import InputError
from nova_mlflow.paths import cache_dir as default_cache_dir
from nova_mlflow.schemas import Case

VERIFIED = "verified-png.txt"  # sha256 of every PNG that decoded (images.VerifiedPngs)

log = logging.getLogger("nova_mlflow")

HF_PREFIX = "hf://"


@dataclass(frozen=True)
class Dataset:
    """Cases in file order plus what identifies them across machines (the digest)."""

    name: str
    source: str
    layout: str
    cases: list[Case]
    digest: str
    image_hashes: dict[str, str] = field(default_factory=dict, repr=False)
    limited_from: str | None = None  # digest of the whole dataset, for a subset (--limit)

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def full_digest(self) -> str:
        """Digest of the whole dataset, whatever --limit kept: runs with the same full digest
        score cases of one dataset and compare on the cases they share."""
        return self.limited_from or self.digest

    def by_filename(self) -> dict[str, Case]:
        return {c.filename: c for c in self.cases}

    def limited(self, n: int | None) -> Dataset:
        """The first n cases in a stable order (sorted by filename), for quick runs."""
        if n is None or n >= len(self.cases):
            return self
        cases = sorted(self.cases, key=lambda c: c.filename)[:n]
        hashes = {c.filename: self.image_hashes[c.filename] for c in cases if c.filename in self.image_hashes}
        return Dataset(f"{self.name}", self.source, self.layout, cases, _digest(cases, hashes),
                       hashes, self.full_digest)


def load_dataset(
    spec: str | Path,
    *,
    images_dir: str | Path | None = None,
    check_images: bool = True,
    cache_dir: Path | None = None,
) -> Dataset:
    """Read and validate a whole dataset before any model is called.

    check_images=False skips opening images (for statistics on the text alone); the boxes are
    then clipped to the nominal 480 x 480.
    """
    spec_s = str(spec)
    if spec_s == "demo":
        from nova_mlflow.data.demo import demo_root

        root = demo_root(cache_dir)
        return _load_dir(root, "demo", images_dir, check_images)
    if spec_s.startswith(HF_PREFIX):
        from nova_mlflow.data.hub import download

        root = download(spec_s[len(HF_PREFIX):], cache_dir)
        return _load_dir(root, spec_s, images_dir, check_images)
    path = Path(spec_s).expanduser()
    if not path.exists():
        raise InputError("dataset path does not exist (expected a directory, a NOVA CSV or "
                         "parquet file, 'demo' or hf://c-i-ber/Nova)", file=path)
    return _load_dir(path, path.name, images_dir, check_images)


def dataset_root(spec: str | Path) -> Path | None:
    """The directory a dataset spec's files live in, without building or downloading it
    (None for a path that does not exist): what may be read on the dataset's behalf."""
    from nova_mlflow.paths import cache_dir

    spec_s = str(spec)
    if spec_s == "demo":
        from nova_mlflow.data.demo import DEMO_VERSION

        return cache_dir() / DEMO_VERSION
    if spec_s.startswith(HF_PREFIX):
        from nova_mlflow.data.hub import hub_cache

        return hub_cache()
    path = Path(spec_s).expanduser()
    if not path.exists():
        return None
    return path if path.is_dir() else path.parent


def find_tables(path: Path) -> tuple[list[Path], list[Path]]:
    """NOVA CSVs and parquet files in a directory (or the file itself)."""
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return [path], []
        if path.suffix.lower() == ".parquet":
            return [], [path]
        raise InputError("expected a .csv or .parquet file", file=path)
    csvs = [p for p in sorted(path.glob("*.csv")) if _has_columns_csv(p)]
    parquets = sorted(path.glob("*.parquet")) + sorted(path.glob("data/*.parquet"))
    return csvs, parquets


def _has_columns_csv(p: Path) -> bool:
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
    except OSError:
        return False
    cols = {c.strip().strip('"') for c in header.split(",")}
    return {"filename", "final_diagnosis"} <= cols


def _load_dir(path: Path, name: str, images_dir, check_images: bool) -> Dataset:
    csvs, parquets = find_tables(path)
    root = path if path.is_dir() else path.parent
    if len(csvs) > 1 or len(parquets) > 1:
        raise InputError(f"several NOVA tables found ({', '.join(p.name for p in csvs + parquets)});"
                         " point --data at one file", file=path)
    if not csvs and not parquets:
        raise InputError(f"no NOVA metadata found: expected a CSV with columns "
                         f"{', '.join(CSV_REQUIRED)} or a parquet file with {', '.join(PARQUET_REQUIRED)}",
                         file=path)
    size_of = header_size if check_images else assumed_size
    if parquets:
        cases = list(read_parquet_layout(parquets[0], root, size_of))
        layout = "parquet"
        if csvs:  # the CSV adds what the parquet lacks, joined on filename
            extra = {c.filename: c for c in read_csv_layout(csvs[0], _images_dir(root, images_dir), size_of)}
            cases = [_enrich(c, extra.get(c.filename)) for c in cases]
            layout = "parquet+csv"
        table = parquets[0]
    else:
        images = _images_dir(root, images_dir)
        cases = list(read_csv_layout(csvs[0], images, size_of))
        layout, table = "csv", csvs[0]
    _check_unique(cases, table)
    if not cases:
        raise InputError("the table has no rows", file=table)
    hashes = _verify_images(cases, table) if check_images else {}
    return Dataset(name, str(path), layout, cases, _digest(cases, hashes), hashes)


def _images_dir(root: Path, images_dir) -> Path:
    if images_dir is not None:
        return Path(images_dir)
    return root / "images" if (root / "images").is_dir() else root


def _enrich(case: Case, extra: Case | None) -> Case:
    if extra is None:
        return case
    update = {}
    for name in ("caption", "title", "differential_diagnosis", "rater_boxes", "gold_boxes"):
        if not getattr(case, name) and getattr(extra, name):
            update[name] = getattr(extra, name)
    return case.model_copy(update=update) if update else case


def _check_unique(cases: Iterable[Case], table: Path) -> None:
    first: dict[str, int] = {}
    for i, c in enumerate(cases, start=1):
        if c.filename in first:
            raise InputError(f"duplicate filename {c.filename!r} (first at row {first[c.filename]})",
                             file=table, row=i, field="filename")
        first[c.filename] = i


def _verify_images(cases: list[Case], table: Path) -> dict[str, str]:
    """Check every image (decoded once per machine: images.VerifiedPngs); the first bad one
    in table order is the error (cases are in table order, so row = index + 1)."""
    results = verify_pngs([c.image_path for c in cases], VerifiedPngs(default_cache_dir() / VERIFIED))
    hashes = {}
    for row, (c, sha) in enumerate(zip(cases, results), start=1):
        if isinstance(sha, InputError):
            raise InputError(f"{sha.message}: {c.image_path}", file=table, row=row,
                             field="filename") from None
        hashes[c.filename] = sha
    return hashes


def _digest(cases: list[Case], image_hashes: dict[str, str]) -> str:
    """Content digest independent of where the files live: metadata plus image bytes."""
    h = hashlib.sha256()
    for c in sorted(cases, key=lambda c: c.filename):
        record = c.model_dump(mode="json", exclude={"image_path", "derived"})
        record["image_sha256"] = image_hashes.get(c.filename)
        h.update(json.dumps(record, sort_keys=True).encode())
    return h.hexdigest()[:16]


def cases_frame(dataset: Dataset) -> pd.DataFrame:
    """One row per case, the shape MLflow's dataset tracking and the UI show."""
    return pd.DataFrame(
        {
            "filename": c.filename,
            "case_id": c.case_id,
            "scan_id": c.scan_id,
            "caption": c.caption or "",
            "clinical_history": c.clinical_history,
            "final_diagnosis": c.final_diagnosis,
            "n_gold_boxes": len(c.gold_boxes),
            "gold_boxes": json.dumps([b.as_list() for b in c.gold_boxes]),
            "plane": c.derived.plane or "",
            "sequence": c.derived.sequence or "",
            "image_sha256": dataset.image_hashes.get(c.filename, ""),
        }
        for c in dataset.cases
    )


__all__ = ["Dataset", "load_dataset", "cases_frame", "read_text_table"]
