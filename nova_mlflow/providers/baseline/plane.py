"""Guess the imaging plane of a slice from its pixels (for the baseline's captions).

Heuristic, tuned on the demo set (slices of the MNI152 template): a sagittal slice is not
left-right symmetric; an axial slice is taller than wide (anterior-posterior is the long
axis) and stays wide at the bottom; a coronal slice is about as wide as tall and narrows
towards the brain stem. Not validated on real NOVA scans, whose framing varies.
"""

from __future__ import annotations

import numpy as np


def plane_features(image: np.ndarray) -> tuple[float, float, float] | None:
    """(height/width of the head, mirror correlation, width of the bottom 15% / max width)."""
    im = image.astype(float)
    mask = im > max(20.0, 0.1 * float(im.max()))
    if mask.sum() < 500:
        return None
    ys, xs = np.nonzero(mask)
    crop = im[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if crop.std() == 0:
        return None
    aspect = (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1)
    symmetry = float(np.corrcoef(crop.ravel(), crop[:, ::-1].ravel())[0, 1])
    widths = mask[ys.min():ys.max() + 1].sum(axis=1)
    bottom = float(widths[int(0.85 * len(widths)):].mean() / widths.max())
    return float(aspect), symmetry, bottom


def guess_plane(image: np.ndarray) -> str | None:
    f = plane_features(image)
    if f is None:
        return None
    aspect, symmetry, bottom = f
    if symmetry < 0.75:
        return "sagittal"
    if aspect > 1.09:
        return "axial"
    if aspect < 1.06:
        return "coronal"
    return "axial" if bottom > 0.5 else "coronal"
