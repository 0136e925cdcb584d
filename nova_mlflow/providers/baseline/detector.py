"""A classical, unsupervised lesion detector: the localization baseline.

Why: a benchmark needs a floor that any useful model must beat, computed offline with no
weights. The detector sees only pixels (no plane, no truth). A lesion is a compact region
whose intensity departs from what is expected there: from the mirrored hemisphere when the
slice is left-right symmetric (axial/coronal views; this cancels symmetric anatomy such as
the ventricles), otherwise from the brain's typical intensity. Candidate regions are kept
if they differ from a ring around them and are blob-shaped, then ranked.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BoxXYXY = tuple[float, float, float, float]

_HIGH, _LOW = 1.5, 0.8  # hysteresis thresholds on the anomaly map (robust z units)
_MIN_AREA_FRACTION = 4e-4  # drop specks (< ~90 px on a 480 x 480 image)
_MAX_AREA_FRACTION = 0.25  # of the brain: larger regions are tissue classes, not lesions
_MIN_CONTRAST = 1.0  # region vs. a ring around it, robust z units
_MIN_FIT = 0.8  # area ratio to the moment-matched ellipse: ~1 for a blob, low for sulci
_SYMMETRY_MIN_CORR = 0.75


def detect_boxes(image: np.ndarray, max_boxes: int = 3) -> list[BoxXYXY]:
    """Pixel (x1, y1, x2, y2) boxes of the most anomalous regions, most anomalous first.

    Returns [] for anything without a recognisable brain (blank, constant, not 2-D)."""
    img = _as_gray(image)
    if img is None or max_boxes <= 0:
        return []
    brain = brain_mask(img)
    if brain.sum() < 0.02 * img.size:
        return []
    z = robust_z(img, brain)
    return _rank(candidates(anomaly_map(z, brain), z, brain), max_boxes)


def _as_gray(image: np.ndarray) -> np.ndarray | None:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4) and np.issubdtype(arr.dtype, np.number):
        arr = arr[..., :3].mean(axis=2)
    if arr.ndim != 2 or min(arr.shape) < 16 or not np.issubdtype(arr.dtype, np.number):
        return None
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or arr.max() <= arr.min():
        return None
    arr = arr / max(abs(arr.min()), abs(arr.max()))  # no overflow below
    return (arr - arr.min()) / np.ptp(arr)  # 0..1: every threshold is relative anyway


def brain_mask(img: np.ndarray) -> np.ndarray:
    """Head/brain region: threshold at a fraction of the bright level, close small gaps
    (dark lesions and CSF at the surface), fill holes and keep the largest component."""
    smooth = ndimage.gaussian_filter(img, 2)
    fg = smooth > img.min() + 0.2 * (np.percentile(smooth, 99) - img.min())
    fg = ndimage.binary_fill_holes(_erode(_dilate(fg, 6), 6))
    labels, n = ndimage.label(fg)
    if n == 0:
        return fg
    sizes = ndimage.sum_labels(fg, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def robust_z(img: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """(img - median) / (1.4826 MAD) over the brain: contrast-independent units."""
    vals = img[brain]
    med = float(np.median(vals))
    mad = 1.4826 * float(np.median(np.abs(vals - med)))
    return (img - med) / max(mad, 1e-3 * float(np.ptp(img)), 1e-12)


def anomaly_map(z: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Signed departure from the expected value, in z units (0 outside the brain): the
    mirrored hemisphere when the slice is symmetric, else the brain's median (z = 0)."""
    mirrored = _mirror(z, brain)
    expected = mirrored if mirrored is not None else 0.0
    return np.where(brain, ndimage.gaussian_filter(z - expected, 1.5), 0.0)


def _mirror(img: np.ndarray, brain: np.ndarray) -> np.ndarray | None:
    """The image flipped about the brain's vertical midline, or None if the slice is not
    left-right symmetric enough for the mirror to predict the other side (e.g. sagittal)."""
    twice_centre = int(np.rint(2 * np.nonzero(brain)[1].mean()))
    src = twice_centre - np.arange(img.shape[1])  # column x mirrors column 2c - x
    inside = (src >= 0) & (src < img.shape[1])
    src = np.clip(src, 0, img.shape[1] - 1)
    both = brain & brain[:, src] & inside
    if both.sum() < 0.5 * brain.sum():
        return None
    mirrored = img[:, src]
    a, b = img[both], mirrored[both]
    if a.std() == 0 or b.std() == 0:
        return None
    return mirrored if float(np.corrcoef(a, b)[0, 1]) >= _SYMMETRY_MIN_CORR else None


def candidates(score: np.ndarray, z: np.ndarray, brain: np.ndarray) -> list[dict]:
    """Regions of |score| (hysteresis per sign, opened) with the features used to rank."""
    inner = _erode(brain, 3)
    area_range = (max(_MIN_AREA_FRACTION * score.size, 9.0), _MAX_AREA_FRACTION * brain.sum())
    out = []
    for sign in (1.0, -1.0):
        signed = sign * score
        low = _dilate(_erode((signed > _LOW) & inner, 2), 2)  # opening: drop thin sulci
        labels, _ = ndimage.label(low)
        for lab, obj in enumerate(ndimage.find_objects(labels), start=1):
            if obj is None:
                continue
            region = labels[obj] == lab
            area = float(region.sum())
            if area_range[0] <= area <= area_range[1] and signed[obj][region].max() >= _HIGH:
                out.append(_features(sign, obj, region, z, brain))
    return out


def _features(sign: float, obj: tuple[slice, slice], region: np.ndarray, z: np.ndarray,
              brain: np.ndarray) -> dict:
    """Area, blob fit (area vs. moment-matched ellipse) and contrast with a ring around it."""
    ys, xs = obj
    yy, xx = np.nonzero(region)
    area = float(len(yy))
    cov = np.cov(np.stack([yy, xx]).astype(float))
    ellipse_area = 4 * np.pi * np.sqrt(max(float(np.linalg.det(cov)), 1e-9))
    fit = min(area / ellipse_area, ellipse_area / area)
    pad = int(np.clip(0.3 * max(ys.stop - ys.start, xs.stop - xs.start), 4, 20))
    win = np.s_[max(0, ys.start - pad):ys.stop + pad, max(0, xs.start - pad):xs.stop + pad]
    full = np.zeros(brain.shape, bool)
    full[obj] = region
    ring = ~full[win] & brain[win]  # the padded box around the region, brain only
    around = float(z[win][ring].mean()) if ring.any() else 0.0
    return {"box": (float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)),
            "sign": sign, "area": area, "fit": float(fit),
            "contrast": sign * (float(z[obj][region].mean()) - around)}


def _rank(found: list[dict], max_boxes: int) -> list[BoxXYXY]:
    """Keep regions that stand out from their surroundings and are blob-shaped; rank by
    contrast x sqrt(area) x fit^4, so a compact, clearly different region comes first."""
    kept = [c for c in found if c["contrast"] >= _MIN_CONTRAST and c["fit"] >= _MIN_FIT]
    kept.sort(key=lambda c: (-c["contrast"] * np.sqrt(c["area"]) * c["fit"] ** 4, c["box"]))
    return [c["box"] for c in kept[:max_boxes]]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Square structuring elements: separable, so fast (min/max filters)."""
    return ndimage.maximum_filter(mask, size=2 * radius + 1, mode="constant", cval=False)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    return ndimage.minimum_filter(mask, size=2 * radius + 1, mode="constant", cval=False)
