"""The demo set's images: slices of nilearn's MNI152 template with synthetic lesions.

Tissue maps give T1/T2/FLAIR looks; lesions are painted as bright or dark blobs whose boxes
are known exactly; the same noise goes on a lesion-free twin so tests can check each box
covers its lesion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from nova_mlflow.data.demo.content import SIZE, Dx, Seen, caption

LOOKS = {"T1": (0.82, 0.52, 0.12), "T2": (0.38, 0.58, 0.95), "FLAIR": (0.48, 0.66, 0.08)}


@dataclass(frozen=True)
class Templates:
    """Tissue probability volumes cropped to the brain; `lo` is the crop's first voxel."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    lo: np.ndarray


@dataclass
class Slice:
    """One rendered slice: the image, its lesion-free twin (same noise) and the lesion masks;
    the twin and masks are kept so tests can check that each gold box covers its lesion."""

    image: np.ndarray  # uint8, 480 x 480
    clean: np.ndarray
    masks: list[np.ndarray]
    boxes: list[tuple[float, float, float, float]]  # x, y (top-left), width, height
    caption: str


def load_templates() -> Templates:
    """GM/WM/CSF maps from nilearn's MNI152 files bundled in its wheel (no download)."""
    try:
        from nilearn import datasets
    except ImportError as exc:  # pragma: no cover - nilearn is a dependency
        raise RuntimeError("the demo set needs nilearn: pip install nilearn") from exc
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0.5
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata() * mask
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata() * mask
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0) + 1
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    return Templates(gm[crop], wm[crop], csf[crop], lo)


def _orient(vol: np.ndarray, plane: str, index: int) -> np.ndarray:
    """Radiological view of RAS volume axes (i grows to the patient's right): axial anterior
    up and coronal superior up, both with patient right on image left; sagittal superior up,
    anterior left."""
    sl = {"axial": vol[:, :, index], "coronal": vol[:, index, :], "sagittal": vol[index, :, :]}[plane]
    return sl.T[::-1, ::-1]


def _to_square(sl: np.ndarray) -> np.ndarray:
    """Pad (centred, with a margin) to a square and resize to 480 x 480, bilinear."""
    from PIL import Image

    side = max(sl.shape) + 20
    out = np.zeros((side, side), np.float32)
    r0, c0 = (side - sl.shape[0]) // 2, (side - sl.shape[1]) // 2
    out[r0:r0 + sl.shape[0], c0:c0 + sl.shape[1]] = sl
    return np.asarray(Image.fromarray(out).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def _tissue(tpl: Templates, plane: str, mm: float) -> dict[str, np.ndarray]:
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
    origin = (98, 134, 72)[axis]  # MNI mm -> voxel index at 1 mm
    idx = int(np.clip(round(mm + origin) - tpl.lo[axis], 0, tpl.gm.shape[axis] - 1))
    return {k: np.clip(_to_square(_orient(getattr(tpl, k), plane, idx)), 0, 1)
            for k in ("gm", "wm", "csf")}


def _ellipse(shape: tuple[int, int], cy: float, cx: float, a: float, b: float, th: float) -> np.ndarray:
    """Mask of an ellipse (semi-axes a, b, angle th), computed in a window around it."""
    mask = np.zeros(shape, bool)
    r = int(np.ceil(max(a, b))) + 1
    y0, y1 = max(0, int(cy) - r), min(shape[0], int(cy) + r + 1)
    x0, x1 = max(0, int(cx) - r), min(shape[1], int(cx) + r + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    mask[y0:y1, x0:x1] = (u / a) ** 2 + (v / b) ** 2 < 1
    return mask


class _Head(NamedTuple):
    """Per-slice geometry shared by lesion placement and the caption's wording."""

    brain: np.ndarray  # bool mask
    edge: np.ndarray  # distance to the brain surface, px
    ys: np.ndarray  # brain pixel coordinates
    xs: np.ndarray
    parenchyma: np.ndarray  # GM + WM probability
    base: np.ndarray  # lesion-free intensities


def _place(rng: np.random.Generator, dx: Dx, head: _Head, target: float, taken: np.ndarray,
           plane: str) -> np.ndarray | None:
    """Draw an ellipse obeying the diagnosis' location rule, inside the brain, in parenchyma,
    clearly visible and away from earlier lesions' boxes; None if nothing fits."""
    brain, edge, ys, xs = head.brain, head.edge, head.ys, head.xs
    cy0, cx0, radius = ys.mean(), xs.mean(), np.sqrt(len(ys) / np.pi)
    top, height = ys.min(), np.ptp(ys)
    for attempt in range(400):
        d = np.exp(rng.uniform(*np.log(dx.size))) * (0.75 if attempt > 200 else 1.0)
        a, b, th = d / 2, d / 2 * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        i = rng.integers(len(ys))
        cy, cx = float(ys[i]), float(xs[i])
        rn = np.hypot(cy - cy0, cx - cx0) / radius
        if plane != "axial" and (cy - top) / height > 0.6:
            continue  # stay in the cerebrum, away from brainstem and cerebellum
        if not {"deep": rn < 0.45, "periventricular": 0.12 < rn < 0.5,
                "peripheral": rn > 0.45 and edge[ys[i], xs[i]] > a + 4, "edge": rn > 0.5}[dx.where]:
            continue
        mask = _ellipse(brain.shape, cy, cx, a, b, th)
        if not mask.any() or edge[mask].min() <= 3:
            continue
        x, y, w, h = (int(v) for v in _bbox(mask))
        if taken[y:y + h, x:x + w].any():
            continue  # boxes of one image never overlap
        if dx.where == "edge" and edge[mask].min() > 7:
            continue  # a convexity mass touches the brain surface
        if head.parenchyma[mask].mean() < 0.6 or np.abs(target - head.base[mask]).mean() < 0.25:
            continue  # not inside a ventricle, and clearly visible
        return mask
    return None


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, target: float,
           ring: bool) -> np.ndarray:
    """Blend a soft-edged blob towards `target`. The weight is a sigmoid of the signed distance
    to the mask border, so weight > 0.5 exactly on the mask: the gold box is known exactly."""
    scale = max(0.6, 0.03 * np.sqrt(mask.sum()))
    x, y, w, h = (int(v) for v in _bbox(mask))
    m = int(10 * scale) + 4  # beyond this the weight is < 1e-4: work in a window
    win = np.s_[max(0, y - m):y + h + m, max(0, x - m):x + w + m]
    sub = mask[win]
    edt_in = ndimage.distance_transform_edt(sub)
    signed = np.where(sub, edt_in - 0.5, 0.5 - ndimage.distance_transform_edt(~sub))
    weight = 1.0 / (1.0 + np.exp(-np.clip(signed / scale, -40, 40)))
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, sub.shape), 4)
    mottle = 0.06 * np.clip(mottle / (mottle.std() + 1e-9) + 1.5, 0, None)  # smooth, one-sided
    value = target - mottle if target > 0.5 else target + mottle
    if ring:  # abscess: a rim of opposite signal just inside the border
        depth = edt_in / max(float(edt_in.max()), 1.0)
        value = value + (-0.3 if target > 0.5 else 0.3) * np.exp(-((depth - 0.15) / 0.08) ** 2)
    out = img.copy()
    out[win] += weight * rng.uniform(0.85, 1.0) * (value - img[win])
    return out


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    """x, y (top-left), width, height of the mask's pixels, pixel edges included."""
    rows, cols = np.nonzero(mask)
    return (float(cols.min()), float(rows.min()), float(np.ptp(cols) + 1), float(np.ptp(rows) + 1))


def _where(mask: np.ndarray, head: _Head, plane: str, mm: float) -> tuple[str, str, str]:
    """(side, lobe, depth) in words. Axial/coronal images are radiological (image left =
    patient right); a sagittal slice's side is that of its position (x > 0 is right)."""
    ys, xs = head.ys, head.xs
    cy, cx = np.argwhere(mask).mean(0)
    fy, fx = (cy - ys.min()) / np.ptp(ys), (cx - xs.min()) / np.ptp(xs)
    side = ("right" if mm > 0 else "left") if plane == "sagittal" else (
        "right" if cx < xs.mean() else "left")
    lateral = abs(fx - 0.5) > 0.28
    if plane == "axial":
        lobe = "frontal" if fy < 0.38 else "occipital" if fy > 0.72 else (
            "temporal" if mm < 14 and lateral else "parietal")
    elif plane == "coronal":
        lobe = "temporal" if fy > 0.5 and lateral else (
            "frontal" if mm > -5 else "parietal" if mm > -62 else "occipital")
    else:
        lobe = "frontal" if fx < 0.4 else "occipital" if fx > 0.74 else (
            "temporal" if fy > 0.5 else "parietal")
    rn = np.hypot(cy - ys.mean(), cx - xs.mean()) / np.sqrt(len(ys) / np.pi)
    depth = "periventricular" if rn < 0.42 else "cortical" if rn > 0.72 else "subcortical"
    return side, lobe, depth


def render(rng: np.random.Generator, tpl: Templates, dx: Dx, plane: str, mm: float,
           seq: str) -> Slice:
    """One slice of `plane` at `mm` (MNI) in sequence `seq` with lesions typical of `dx`."""
    t = _tissue(tpl, plane, mm)
    wm_i, gm_i, csf_i = LOOKS[seq]
    base = t["wm"] * wm_i + t["gm"] * gm_i + t["csf"] * csf_i
    brain = ndimage.binary_fill_holes((t["gm"] + t["wm"] + t["csf"]) > 0.5)
    head = _Head(brain, ndimage.distance_transform_edt(brain), *np.nonzero(brain), t["gm"] + t["wm"], base)
    sign = dx.signal[("T1", "T2", "FLAIR").index(seq)]
    img, taken, masks = base.copy(), np.zeros(base.shape, bool), []
    for _ in range(int(rng.integers(dx.count[0], dx.count[1] + 1))):
        target = rng.uniform(0.93, 1.0) if sign == "+" else rng.uniform(0.03, 0.12)
        mask = _place(rng, dx, head, target, taken, plane)
        if mask is None:
            continue
        img = _paint(rng, img, mask, target, ring=dx.noun.startswith("ring"))
        x, y, w, h = (int(v) for v in _bbox(mask))
        taken[max(0, y - 5):y + h + 5, max(0, x - 5):x + w + 5] = True
        masks.append(mask)
    if not masks:
        raise RuntimeError(f"no room for a {dx.name} lesion on the {plane} slice at {mm:.0f} mm")
    boxes = [_bbox(m) for m in masks]
    where = [_where(m, head, plane, mm) for m in masks]
    sig = "hyperintense" if sign == "+" else "hypointense"
    text = caption(rng, dx, Seen(plane, seq, sig, where, [max(b[2:]) for b in boxes]))
    noise = rng.normal(0, 1, base.shape) * (0.008 + 0.017 * brain)
    def as_u8(a: np.ndarray) -> np.ndarray:  # same noise on both, so they differ only by lesions
        return np.clip(np.round((a + noise) * 255), 0, 255).astype(np.uint8)

    return Slice(as_u8(img), as_u8(base), masks, boxes, text)
