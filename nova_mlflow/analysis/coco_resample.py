"""COCO mAP (pycocotools' accumulate) on B weighted resamples at once, from per-image TP flags.

Why not call pycocotools per resample: 2,000 COCOeval runs take minutes. What pycocotools
does, with every score 1.0 (metrics/coco.py): detections are taken in image order, then
emitted order; at each IoU threshold tp/fp are cumulated over that sequence,
recall = tp / n_gold, precision = tp / (tp + fp + eps), and AP is the mean over the 101
recall points r of q(r) = max precision among sequence positions with recall >= r (its
right-to-left envelope read at searchsorted(recall, r, 'left')), 0 when no position
reaches r; no gold box in the set -> no AP (the package reports 0).

A resample holds image i w_i times; its copies count as separate images placed where the
image stands in filename order (so the sequence is image 1 x w_1, image 2 x w_2, ...).

Which positions matter: a later position with at least the recall and the precision of an
earlier one makes the earlier one irrelevant to every q(r). An FP never raises precision, and
within a run of consecutive TPs the last one has the highest recall and precision. So only
run ends count: a TP followed by an FP of its image or ending the image (`candidates`); for
an image without FP, all copies form one run, and only the last TP of the last copy counts.
For candidate i (TP rank k_i, f_i FPs before it in the image) of copy c of image j:
tp = T_j + c tp_j + k_i + 1 and fp = F_j + c fp_j + f_i (T_j, F_j: weighted totals of the
images before j). The maximum precision per (draw, recall bin) is one `maximum.at` per
layer of positions (the q-th position of every image copy block); order does not matter.
Integers are int32 (half the memory traffic); precision and recall are float64 computed as pycocotools computes them
(the recall bin of each TP count comes from a per-draw table), so the AP is the same number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
EPS = np.spacing(1)
CHUNK_POSITIONS = 4_000_000  # draws are processed in chunks of about this many positions


@dataclass(frozen=True)
class ThresholdFlags:
    """One IoU threshold over all images: per-image counts and the candidate positions."""

    tp: np.ndarray  # [n] true positives per image
    fp: np.ndarray  # [n] false positives per image
    image: np.ndarray  # [P] image of each candidate (a TP ending a run), images ascending
    rank: np.ndarray  # [P] TPs before it in its image
    fp_before: np.ndarray  # [P] FPs before it in its image


def parse_flags(cells: Sequence[str], n_thresholds: int) -> list[ThresholdFlags]:
    """Per threshold, the TP structure of the `coco_tp` column (components.py)."""
    per_image = [json.loads(c) if c else [] for c in cells]
    out = []
    for t in range(n_thresholds):
        tp, fp, img, rank, fb = [], [], [], [], []
        for i, flags in enumerate(per_image):
            s = flags[t] if flags else ""
            hits = s.count("1")
            tp.append(hits)
            fp.append(len(s) - hits)
            seen = 0
            for pos, ch in enumerate(s):
                if ch != "1":
                    continue
                if pos + 1 == len(s) or s[pos + 1] == "0":
                    img.append(i)
                    rank.append(seen)
                    fb.append(pos - seen)  # positions before it minus TPs before it
                seen += 1
        out.append(ThresholdFlags(*(np.array(x, np.int32) for x in (tp, fp, img, rank, fb))))
    return out


@dataclass(frozen=True)
class DrawSet:
    """What every threshold of one run shares for a set of draws. Image-major ([n, B]):
    the images with a TP are then contiguous rows, and `maximum.at` needs no order."""

    w: np.ndarray  # [n, B] int32 image weights
    det_before: np.ndarray  # [n, B] detections of the images before each image
    npig: np.ndarray  # [B] gold boxes in the draw
    bins: np.ndarray  # [B, max npig + 1] recall bin of each TP count (recall_bin)

    def draws(self, sl: slice) -> DrawSet:
        return DrawSet(self.w[:, sl], self.det_before[:, sl], self.npig[sl], self.bins[sl])


def recall_bins(w: np.ndarray, n_gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(npig [B], bins [B, max npig + 1]) of image weights [n, B]: gold boxes only (shared)."""
    npig = n_gold.astype(np.int64) @ w
    grid = np.arange(int(npig.max(initial=0)) + 1) / np.where(npig > 0, npig, 1)[:, None]
    return npig, recall_bin(grid).astype(np.int32)


def draw_set(w: np.ndarray, n_det: np.ndarray, npig: np.ndarray, bins: np.ndarray) -> DrawSet:
    wd = w * n_det.astype(np.int32)[:, None]
    return DrawSet(w, np.cumsum(wd, axis=0, dtype=np.int32) - wd, npig, bins)


def recall_bin(rc: np.ndarray) -> np.ndarray:
    """How many RECALL_POINTS are <= rc: searchsorted(..., 'right') by arithmetic (rc >= 0)."""
    k = np.clip(rc * 100, 0, 100).astype(np.int32)  # floor, give or take one
    return k + (_POINTS[k] <= rc) + (_POINTS[k + 1] <= rc)


_POINTS = np.r_[RECALL_POINTS, np.inf]


def average_precision(f: ThresholdFlags, d: DrawSet) -> np.ndarray:
    """[B] COCO AP at one threshold on every draw of `d`; NaN for a draw without gold.

    Draws are independent, so they go in chunks that bound the memory.
    """
    step = max(1, CHUNK_POSITIONS // max(1, len(f.image)))
    b_count = len(d.npig)
    return np.concatenate([_ap(f, d if step >= b_count else d.draws(slice(i, i + step)))
                           for i in range(0, max(1, b_count), step)])


def _ap(f: ThresholdFlags, d: DrawSet) -> np.ndarray:
    b_count = len(d.npig)
    if len(f.image) == 0:
        return np.where(d.npig > 0, 0.0, np.nan)
    images, first, n_cand = np.unique(f.image, return_index=True, return_counts=True)
    first, n_cand = first.astype(np.int32), n_cand.astype(np.int32)
    tp_j, fp_j = f.tp[images], f.fp[images]
    pure = fp_j == 0
    w = d.w[images]  # [m, B]
    wt = w * tp_j[:, None]
    before_tp = (np.cumsum(wt, axis=0, dtype=np.int32) - wt).ravel()
    before_fp = d.det_before[images].ravel() - before_tp
    # slot (j, b) = image j's copies in draw b: a pure image gives one position (the last TP
    # of its last copy), another w * n_cand; the q-th is candidate q % n_cand of copy
    # q // n_cand. Layer q holds the q-th position of every slot that has one.
    reps = np.where(pure[:, None], np.minimum(w, 1), w * n_cand[:, None]).ravel()
    last_copy = np.where(pure[:, None], w - 1, 0).ravel()
    n_bins = len(RECALL_POINTS) + 1
    width = d.bins.shape[1]
    bins = d.bins.ravel()
    rank1 = f.rank + 1
    best = np.zeros(b_count * n_bins)
    idx = np.flatnonzero(reps)
    q = 0
    while len(idx):
        j = idx // b_count
        b = idx - j * b_count
        if q == 0:
            copy, src = last_copy[idx], first[j]
        else:
            per = n_cand[j]
            copy = q // per + last_copy[idx]
            src = first[j] + q % per
        tp = before_tp[idx] + copy * tp_j[j] + rank1[src]
        fp = before_fp[idx] + copy * fp_j[j] + f.fp_before[src]
        key = b * n_bins + bins[b * width + tp]
        tpf = tp.astype(float)
        np.maximum.at(best, key, tpf / (fp + tpf + EPS))
        q += 1
        idx = idx[reps[idx] > q]
    # q(r) = max over bins above r; bin j holds positions reaching the first j recall points
    env = np.maximum.accumulate(best.reshape(b_count, n_bins)[:, ::-1], axis=1)[:, ::-1]
    return np.where(d.npig > 0, env[:, 1:].mean(axis=1), np.nan)
