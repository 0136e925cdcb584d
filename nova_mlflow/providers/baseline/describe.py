"""Template captions from detected boxes: the captioning baseline.

Why: a caption score only means something next to a floor; this one says what a detector
can see (count, size, side, region, signal) in radiology words, with no language model.
Side follows the radiological convention of axial and coronal images: the image's left is
the patient's right. A sagittal slice shows one hemisphere, so no side is given for it.
Regions are rough: they come from the box position in the image, not from anatomy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BoxXYXY = tuple[float, float, float, float]
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five"}
_DEPTHS = ("periventricular", "subcortical", "cortical")


def describe(
    boxes: Sequence[Sequence[float]],
    image_shape: tuple[int, ...],
    plane: str | None = None,
    mean_signal: list[str] | None = None,
) -> str:
    """A one-sentence caption, e.g. "Axial image shows a small hyperintense periventricular
    lesion in the right frontal lobe." Boxes are pixel x1, y1, x2, y2."""
    if not boxes:
        return "No focal abnormality is seen."
    plane = plane.lower() if plane else None
    height, width = int(image_shape[0]), int(image_shape[1])
    where = [_where(b, height, width, plane) for b in boxes]
    head = f"{plane.capitalize()} image shows" if plane else "The image shows"
    sizes = [max(b[2] - b[0], b[3] - b[1]) for b in boxes]
    size = "small " if max(sizes) < 25 else "large " if max(sizes) > 60 else ""
    signals = sorted(set(mean_signal or []))
    signal = " and ".join(signals) + " " if signals else ""
    if len(boxes) == 1:
        side, lobe, depth = where[0]
        place = f"the {side} {lobe} lobe" if side else f"the {lobe} lobe"
        return f"{head} a {size}{signal}{depth} lesion in {place}."
    sides = sorted({w[0] for w in where if w[0]})
    lobes = sorted({w[1] for w in where})
    depth = " and ".join(sorted({w[2] for w in where}, key=_DEPTHS.index))
    count = _NUMBERS.get(len(boxes), "multiple")
    hemi = "" if not sides else (" in both hemispheres" if len(sides) > 1 else f" in the {sides[0]} hemisphere")
    lobe_text = f"{' and '.join(lobes)} lobe{'s' if len(lobes) > 1 else ''}"
    return f"{head} {count} {size}{signal}{depth} lesions{hemi} ({lobe_text})."


def _where(box: Sequence[float], height: int, width: int, plane: str | None) -> tuple[str, str, str]:
    """(side, lobe, depth) from the box centre; fractions are of the image, which NOVA crops
    roughly to the head."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    fx, fy = (x1 + x2) / 2 / max(width, 1), (y1 + y2) / 2 / max(height, 1)
    side = "" if plane == "sagittal" else ("right" if fx < 0.5 else "left")
    lateral = abs(fx - 0.5) > 0.25
    if plane == "sagittal":  # anterior is on the image's left
        lobe = "frontal" if fx < 0.4 else "occipital" if fx > 0.72 else (
            "temporal" if fy > 0.55 else "parietal")
    elif plane == "coronal":  # front/back is not visible in a coronal slice
        lobe = "temporal" if fy > 0.55 and lateral else "parietal"
    else:  # axial (or unknown): anterior is at the top
        lobe = "frontal" if fy < 0.38 else "occipital" if fy > 0.7 else "parietal"
    r = float(np.hypot(fx - 0.5, fy - 0.5)) / 0.5
    depth = "periventricular" if r < 0.3 else "cortical" if r > 0.65 else "subcortical"
    return side, lobe, depth


def lesion_signal(image: np.ndarray, box: Sequence[float]) -> str:
    """"hyperintense" or "hypointense": the median of the box's central half compared with
    the brain in a ring around the box (the dark background outside the head is ignored)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    h, w = img.shape[:2]
    x1, x2 = sorted(int(np.clip(round(float(v)), 0, w)) for v in (box[0], box[2]))
    y1, y2 = sorted(int(np.clip(round(float(v)), 0, h)) for v in (box[1], box[3]))
    qx, qy = (x2 - x1) // 4, (y2 - y1) // 4
    core = img[y1 + qy:max(y2 - qy, y1 + qy + 1), x1 + qx:max(x2 - qx, x1 + qx + 1)]
    pad = max(5, max(x2 - x1, y2 - y1) // 2)
    around = np.zeros(img.shape, bool)
    around[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad] = True
    around[y1:y2, x1:x2] = False
    ring = img[around & (img > 0.1 * float(img.max()))]
    if core.size == 0 or ring.size == 0:
        return "hyperintense"
    return "hyperintense" if float(np.median(core)) >= float(np.median(ring)) else "hypointense"
