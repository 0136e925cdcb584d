"""How far our box conventions move definition (c) from WALDO's on the real NOVA metadata.

Research script behind notes/fidelity.md (not part of the package). Usage:
    PYTHONPATH=. python notes/clip_effect.py /path/to/NOVA_metadata.csv
Compares, per image, the best IoU under WALDO's conventions (gold x + w unclipped; Gemini
box_2d / 1000 * 480, no clip, no corner swap) with our pipeline's (gold clipped to 480;
frames.to_pixels swaps corners and clips), on (1) a prediction equal to each gold box's visible
part and (2) seeded perturbed Gemini answers.
"""

from __future__ import annotations

import ast
import random
import sys

import pandas as pd

from nova_mlflow.frames import Frame, to_pixels
from nova_mlflow.metrics.hit_rate import (
    best_iou,
    gemini_box_2d_to_xyxy,
    gold_xyxy,
    hit_rate_metrics,
)

W = H = 480


def golds(cell: str) -> list[tuple[float, float, float, float]]:
    d = ast.literal_eval(cell)
    return [gold_xyxy(x, y, w, h) for x, y, w, h in zip(d["x"], d["y"], d["width"], d["height"])]


def clip(b):
    return (min(max(b[0], 0), W), min(max(b[1], 0), H), min(max(b[2], 0), W), min(max(b[3], 0), H))


def ours_pred(q):
    b = to_pixels(q, Frame.gemini_yxyx_1000, (W, H), (W, H))
    return (b.x1, b.y1, b.x2, b.y2)


def simulate(gold_sets, sigma: float, clamp: bool, seed: int = 0):
    rng = random.Random(seed)
    waldo, ours, pred_only, gold_only, rounded = [], [], [], [], []
    n_swapped = 0
    for gs in gold_sets:
        quads = []
        for g in gs:
            if rng.random() < 0.15:  # some answers miss a box
                continue
            vis = clip(g)
            q = [vis[1] / H * 1000, vis[0] / W * 1000, vis[3] / H * 1000, vis[2] / W * 1000]
            q = [round(v + rng.gauss(0, sigma)) for v in q]
            if clamp:
                q = [min(max(v, 0), 1000) for v in q]
            n_swapped += q[0] > q[2] or q[1] > q[3]
            quads.append(q)
        if rng.random() < 0.05:  # an empty / unparseable answer
            quads = []
        lit = [gemini_box_2d_to_xyxy(q) for q in quads]
        norm = [ours_pred(q) for q in quads]
        waldo.append(best_iou(lit, gs))
        ours.append(best_iou(norm, [clip(g) for g in gs]))
        pred_only.append(best_iou(norm, gs))
        gold_only.append(best_iou(lit, [clip(g) for g in gs]))
        rounded.append(best_iou([tuple(round(v) for v in b) for b in lit], gs))
    return waldo, ours, pred_only, gold_only, rounded, n_swapped


def main(path: str) -> None:
    df = pd.read_csv(path)
    gold_sets = [golds(c) for c in df.bbox_gold]
    over = [(df.filename[i], g) for i, gs in enumerate(gold_sets) for g in gs if clip(g) != g]
    print(f"gold boxes overhanging the image: {len(over)}, images: {len({f for f, _ in over})}")
    for f, g in over:
        print(f"  {f} {tuple(round(v, 2) for v in g)} visible/full IoU = {best_iou([clip(g)], [g]):.4f}")
    for sigma, clamp in ((10, True), (30, True), (60, True), (30, False)):
        w, o, p, g, r, sw = simulate(gold_sets, sigma, clamp)
        def diff(a, b, tol):
            return sum(abs(x - y) > tol for x, y in zip(a, b))
        mw, mo = hit_rate_metrics(w), hit_rate_metrics(o)
        print(f"sigma={sigma} clamp={clamp}: swapped boxes {sw}; images |waldo-ours|>1e-9: "
              f"{diff(w, o, 1e-9)}, >0.002: {diff(w, o, 0.002)} (gold clip alone {diff(w, g, 1e-9)}, "
              f"pred clip/swap alone {diff(w, p, 1e-9)}; pixels rounded to int instead: "
              f"{diff(w, r, 0.002)} images >0.002, mean_iou {hit_rate_metrics(r)['mean_iou']:.5f}); "
              + ", ".join(f"{k} {mw[k]:.5f} vs {mo[k]:.5f}" for k in mw))


if __name__ == "__main__":
    main(sys.argv[1])
