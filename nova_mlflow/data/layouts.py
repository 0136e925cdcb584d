"""Readers for the two published NOVA layouts; both yield Cases keyed by filename.

1. Metadata CSV (NOVA_metadata.csv): Python-literal bbox dict strings per row.
2. Parquet release (c-i-ber/Nova, data/nova-v1.parquet): `meta` dict + `bboxes` records.
Rows are never matched by position: images and any second table are joined on `filename`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from nova_mlflow.data.boxes import BoxFormatError, boxes_from_records, literal_dict
from nova_mlflow.data.images import png_size
from nova_mlflow.data.rows import (
    RowSource,
    check_filename,
    gold_from_literal,
    is_missing,
    RowFields,
    make_case,
    raters_from_literal,
)
from nova_mlflow.errors import InputError
from nova_mlflow.schemas import IMAGE_SIZE, Case, RaterBox

CSV_REQUIRED = ("filename", "caption", "case_id", "scan_id", "clinical_history",
                "final_diagnosis", "bbox_gold")
PARQUET_REQUIRED = ("filename", "case_id", "scan_id", "meta", "bboxes")

SizeOf = Callable[[Path], tuple[int, int]]


def header_size(path: Path) -> tuple[int, int]:
    return png_size(path)


def image_size(size_of: SizeOf, image: Path, src: RowSource, field: str) -> tuple[int, int]:
    """Image checks report the table row that named the image, not just the image path."""
    try:
        return size_of(image)
    except InputError as exc:
        raise InputError(f"{exc.message}: {image}", file=src.file, row=src.row, field=field) from None


def assumed_size(path: Path) -> tuple[int, int]:
    """For metadata-only work (statistics on the text): no image is opened."""
    return (IMAGE_SIZE, IMAGE_SIZE)


def read_text_table(path: Path) -> pd.DataFrame:
    """CSV as strings; a non-UTF-8 byte or a parse error becomes one InputError line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", file=path) from None
    if not raw.strip():
        raise InputError("file is empty", file=path)
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}",
                         file=path) from None
    try:
        return pd.read_csv(io.StringIO(decoded), dtype=str)  # "nan", "" etc. -> missing
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"not a readable CSV ({' '.join(str(exc).split())})", file=path) from None


def require_columns(columns: Any, required: tuple[str, ...], path: Path) -> None:
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; is this a NOVA metadata file?",
                         file=path)


def _image_path(images_dir: Path, filename: str) -> Path:
    return images_dir / filename


def read_csv_layout(path: Path, images_dir: Path, size_of: SizeOf = header_size) -> Iterator[Case]:
    df = read_text_table(path)
    require_columns(df.columns, CSV_REQUIRED, path)
    has = set(df.columns)
    for i, row in enumerate(df.to_dict("records"), start=1):
        src = RowSource(path, i)
        filename = check_filename(row["filename"], src)
        image = _image_path(images_dir, filename)
        size = image_size(size_of, image, src, "filename")
        yield make_case(src, RowFields(
            filename=filename, image_path=image, size=size, case_id=row["case_id"],
            scan_id=row["scan_id"], caption=row["caption"],
            clinical_history=row["clinical_history"],
            differential=row.get("differential_diagnosis") if "differential_diagnosis" in has else None,
            final_diagnosis=row["final_diagnosis"], title=row.get("title"),
            gold=gold_from_literal(row["bbox_gold"], src, "bbox_gold", size),
            raters=raters_from_literal(row.get("bbox_raters"), src, "bbox_raters", size)
            if "bbox_raters" in has else []))


def _meta_dict(value: Any, src: RowSource) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, (list, tuple)) and is_missing(value):
        return {}
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            try:
                parsed = literal_dict(value)
            except BoxFormatError:
                parsed = None
        if isinstance(parsed, dict):
            return parsed
    raise InputError(f"meta is not a dict: {str(value)[:60]!r}", file=src.file, row=src.row,
                     field="meta")


def _parquet_raters(records: Any, src: RowSource, size: tuple[int, int]) -> list[RaterBox]:
    """Non-gold records (source = rater name) become rater boxes."""
    if records is None or (hasattr(records, "__len__") and len(records) == 0):
        return []
    out: list[RaterBox] = []
    for rec in list(records):
        source = str(rec.get("source", "")) if isinstance(rec, dict) else ""
        if source and source != "gold":
            for b in boxes_from_records([rec], width=size[0], height=size[1], source=source):
                out.append(RaterBox(rater=source, **b.model_dump()))
    return out


def read_parquet_layout(path: Path, root: Path, size_of: SizeOf = header_size) -> Iterator[Case]:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"not a readable parquet file ({type(exc).__name__})", file=path) from None
    require_columns(df.columns, PARQUET_REQUIRED, path)
    for i, row in enumerate(df.to_dict("records"), start=1):
        src = RowSource(path, i)
        filename = check_filename(row["filename"], src)
        meta = _meta_dict(row.get("meta"), src)
        image = _parquet_image(root, row.get("image_path"), filename, src)
        size = image_size(size_of, image, src, "image_path")
        records = row.get("bboxes")
        if records is not None and not isinstance(records, (list, tuple)):
            records = list(records)  # numpy object arrays from pyarrow
        try:
            gold = boxes_from_records(records, width=size[0], height=size[1], source="gold",
                                      clip=False)
            raters = _parquet_raters(records, src, size)
        except (BoxFormatError, ValueError) as exc:
            raise InputError(f"malformed boxes: {exc}", file=path, row=i, field="bboxes") from None
        if not gold and "bbox_gold" in meta:  # older releases kept the CSV dict inside meta
            gold = gold_from_literal(meta["bbox_gold"], src, "meta.bbox_gold", size)
        yield make_case(src, RowFields(
            filename=filename, image_path=image, size=size, case_id=row["case_id"],
            scan_id=row["scan_id"], caption=row.get("caption_text", meta.get("caption")),
            clinical_history=meta.get("clinical_history"),
            differential=meta.get("differential_diagnosis"),
            final_diagnosis=meta.get("final_diagnosis"), title=meta.get("title"),
            gold=gold, raters=raters))


def _parquet_image(root: Path, image_path: Any, filename: str, src: RowSource) -> Path:
    """The release stores a relative image_path; it must stay inside the dataset root."""
    if is_missing(image_path):
        for candidate in (root / "images" / filename, root / filename):
            if candidate.exists():
                return candidate
        return root / "images" / filename
    rel = Path(str(image_path))
    resolved = (root / rel).resolve()
    if rel.is_absolute() or not resolved.is_relative_to(root.resolve()):
        raise InputError(f"image_path {str(image_path)!r} points outside the dataset directory",
                         file=src.file, row=src.row, field="image_path")
    if rel.name != filename:
        raise InputError(f"image_path {str(image_path)!r} does not match filename {filename!r}",
                         file=src.file, row=src.row, field="image_path")
    return root / rel

