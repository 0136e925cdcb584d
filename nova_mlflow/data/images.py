"""Image files: cheap checks at load time, pixels only when a task asks for them.

A dataset of 906 slices is validated by reading each PNG's header and verifying its chunks;
pixel arrays are decoded on demand and never kept, so memory stays flat in the case count.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
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


def verify_png(path: Path) -> tuple[int, int, str]:
    """Header check plus a full chunk/CRC verification; returns (width, height, sha256)."""
    from PIL import Image

    width, height = png_size(path)
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:  # verify() leaves the file unusable; decode for real
                im.load()
    except Exception as exc:  # PIL raises many types for corrupt data
        raise InputError(f"unreadable PNG ({type(exc).__name__}: {exc})", file=path) from None
    return width, height, hashlib.sha256(data).hexdigest()


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
