"""Image files: checked once at load time, pixels only when a task asks for them.

A dataset of 906 slices is validated by reading each PNG's header, verifying its chunks and
decoding it once (a corrupt stream fails here, not in the middle of a run); pixel arrays are
decoded on demand afterwards and never kept, so memory stays flat in the case count.

Decoding every image is most of the time a run spends loading data (~2 s for 906 slices), so
the sha256 of every PNG that passed is remembered (`VerifiedPngs`: <cache>/verified-png.txt,
one hash a line); the same bytes are not decoded again by a later run. Checks run on a few
threads (reading, hashing and decoding release the GIL).
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
from collections.abc import Container, Iterable
from pathlib import Path

import numpy as np

from nova_mlflow.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 8192  # NOVA slices are 480 px; anything this large is a corrupt or hostile header


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, without decoding; raises InputError."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except FileNotFoundError:
        raise InputError("image file not found", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read image ({exc.strerror})", file=path) from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise InputError("not a readable PNG (bad signature or header)", file=path)
    width, height = struct.unpack(">II", head[16:24])
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise InputError(f"PNG header claims {width}x{height} pixels (limit {MAX_SIDE})", file=path)
    return width, height


def verify_png(path: Path, known: Container[str] = ()) -> tuple[int, int, str]:
    """Header check plus a full chunk/CRC verification and a decode; returns (width,
    height, sha256). Bytes whose sha256 is in `known` (they passed before) are not decoded."""
    width, height = png_size(path)
    data = read_bytes(path)
    sha = hashlib.sha256(data).hexdigest()
    if sha not in known:
        _decode_check(data, path)
    return width, height, sha


def _decode_check(data: bytes, path: Path) -> None:
    import io

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
            with Image.open(io.BytesIO(data)) as im:  # verify() leaves it unusable: decode
                im.load()
    except Exception as exc:  # PIL raises many types for corrupt data
        raise InputError(f"unreadable PNG ({type(exc).__name__}: {exc})", file=path) from None


class VerifiedPngs:
    """The sha256 of every PNG that passed `verify_png` on this machine (append-only file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: set[str] = set()
        if path is not None:
            try:
                self.known = {ln for ln in path.read_text(encoding="ascii").split()
                              if len(ln) == 64}
            except (OSError, UnicodeDecodeError):
                pass

    def add(self, hashes: Iterable[str]) -> None:
        new = sorted(set(hashes) - self.known)
        if not new or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="ascii") as fh:
                fh.write("".join(h + "\n" for h in new))
            self.known.update(new)
        except OSError:
            pass  # a read-only cache: decode again next time


def verify_pngs(paths: list[Path], verified: VerifiedPngs) -> list[str | InputError]:
    """`verify_png` of every path on a few threads, in order: its sha256 or its error."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path) -> str | InputError:
        try:
            return verify_png(path, verified.known)[2]
        except InputError as exc:
            return exc

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="nova-png") as pool:
        out = list(pool.map(one, paths))
    verified.add(h for h in out if isinstance(h, str))
    return out


def load_gray(path: Path) -> np.ndarray:
    """Decode to a 2-D uint8 array (NOVA slices are grayscale; RGB is converted)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise InputError("image file not found", file=path) from None
    except Exception as exc:
        raise InputError(f"unreadable PNG ({type(exc).__name__}: {exc})", file=path) from None


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read image ({exc.strerror})", file=path) from None
