"""Offline demo set: a small NOVA-like benchmark made from nilearn's bundled MNI152 template.

Why: the whole pipeline (load -> ask -> parse -> score -> MLflow) must run with no network
and no data-use agreement. Slices of the template get T1/T2/FLAIR looks from the tissue maps,
synthetic lesions with exactly known boxes are painted in, and captions/histories come from
per-diagnosis templates so localization, captioning and diagnosis are all meaningful but not
trivial. The layout is the real release's (metadata CSV + images/), so the normal reader
loads it. Everything is seeded: two builds give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from nova_mlflow.errors import InputError

DEMO_VERSION = "demo-v1"
CSV_NAME = "nova_demo_metadata.csv"
COLUMNS = ("filename", "caption", "case_id", "scan_id", "title", "publication_date",
           "clinical_history", "differential_diagnosis", "final_diagnosis", "link",
           "bbox_gold", "bbox_raters")
SIZE = 480
SEED = 20240611
MARKER = ".complete"
SLICES_PER_CASE = (2, 3, 1, 2)  # cycled over cases: 24 cases -> 48 slices
log = logging.getLogger("nova_mlflow")

# Tissue intensities (WM, GM, CSF) per sequence: T1 WM>GM>CSF, T2 CSF>GM>WM, FLAIR GM>WM, CSF dark.
LOOKS = {"T1": (0.82, 0.52, 0.12), "T2": (0.38, 0.58, 0.95), "FLAIR": (0.48, 0.66, 0.08)}
SEQ_WORD = {"T1": "T1-weighted", "T2": "T2-weighted", "FLAIR": "FLAIR"}
SEQ_WEIGHTS = {"FLAIR": 0.4, "T2": 0.35, "T1": 0.25}
GENERIC = ("headache", "intermittent confusion", "nausea and vomiting", "an unsteady gait",
           "blurred vision", "fatigue", "a generalised seizure", "dizziness")


@dataclass(frozen=True)
class Dx:
    """How one diagnosis looks: lesion pattern, signal per sequence and clinical cues."""

    name: str
    cases: int
    count: tuple[int, int]  # lesions per slice (inclusive)
    size: tuple[int, int]  # lesion diameter on the 480 px image
    where: str  # deep | periventricular | peripheral | edge (touches the brain surface)
    signal: str  # '+' hyper / '-' hypointense on T1, T2, FLAIR
    noun: str
    title: str
    ages: tuple[int, int]
    female: float
    cues: str  # '; '-separated clinical cues; several are shared between diagnoses
    differential: str  # '; '-separated alternatives


DIAGNOSES = (
    Dx("Glioblastoma", 3, (1, 1), (65, 118), "deep", "-++", "mass with heterogeneous signal",
       "Solitary heterogeneous intra-axial mass", (48, 79), 0.4,
       "progressive hemiparesis over three weeks; a first generalised seizure; "
       "personality change noticed by the family; worsening morning headaches",
       "Brain metastases; Primary CNS lymphoma; Cerebral abscess; Low-grade glioma"),
    Dx("Low-grade glioma", 2, (1, 1), (38, 75), "peripheral", "-++", "expansile lesion",
       "Slowly growing cortical lesion", (22, 48), 0.45,
       "several years of infrequent focal seizures; a first focal seizure; subtle word-finding difficulty",
       "Glioblastoma; Subacute infarct; Ganglioglioma; Encephalitis"),
    Dx("Brain metastases", 3, (2, 3), (12, 38), "peripheral", "-++", "lesion",
       "Multiple lesions in a patient with cancer", (50, 78), 0.5,
       "a known lung carcinoma; treated breast cancer; metastatic melanoma; weight loss and a smoking history",
       "Glioblastoma; Cerebral abscess; Primary CNS lymphoma; Neurocysticercosis"),
    Dx("Meningioma", 2, (1, 1), (48, 100), "edge", "+++", "extra-axial mass",
       "Well-defined mass along the convexity", (42, 74), 0.75,
       "slowly progressive headaches over a year; a change in personality; "
       "an incidental finding after minor head trauma",
       "Dural metastasis; Solitary fibrous tumour; Lymphoma; Glioblastoma"),
    Dx("Multiple sclerosis", 3, (2, 3), (10, 24), "periventricular", "-++", "lesion",
       "Multifocal white matter lesions in a young adult", (21, 44), 0.7,
       "relapsing episodes of optic neuritis; limb numbness that resolved over weeks; "
       "Lhermitte sign; double vision and fatigue",
       "Acute disseminated encephalomyelitis; Small vessel ischaemic disease; "
       "Neuromyelitis optica spectrum disorder; Progressive multifocal leukoencephalopathy"),
    Dx("Cerebral abscess", 2, (1, 1), (32, 62), "peripheral", "-++", "ring-shaped lesion",
       "Rim-bounded lesion with fever", (28, 66), 0.35,
       "fever and a recent dental infection; chronic sinusitis and fever; headache with fever; "
       "immunosuppression after transplantation",
       "Glioblastoma; Brain metastases; Tuberculoma; Toxoplasmosis"),
    Dx("Cavernous malformation", 2, (1, 1), (12, 30), "peripheral", "+--", "focus",
       "Small lesion with a dark rim", (20, 52), 0.5,
       "a first generalised seizure; a family history of similar lesions; recurrent brief headaches",
       "Haemorrhagic metastasis; Calcified granuloma; Capillary telangiectasia; Amyloid angiopathy"),
    Dx("Progressive multifocal leukoencephalopathy", 2, (1, 2), (30, 70), "peripheral", "-++",
       "white matter lesion", "Asymmetric white matter lesions", (35, 65), 0.4,
       "HIV infection with a low CD4 count; multiple sclerosis treated with natalizumab; "
       "progressive cognitive decline; immunosuppression after transplantation",
       "HIV encephalopathy; Acute disseminated encephalomyelitis; Primary CNS lymphoma; Multiple sclerosis"),
    Dx("Acute disseminated encephalomyelitis", 2, (2, 3), (16, 42), "peripheral", "-++", "lesion",
       "Multifocal lesions after an infection", (7, 30), 0.5,
       "a viral illness two weeks earlier; recent vaccination and drowsiness; fever; "
       "encephalopathy with limb weakness",
       "Multiple sclerosis; Viral encephalitis; Progressive multifocal leukoencephalopathy; Vasculitis"),
    Dx("Primary CNS lymphoma", 1, (1, 1), (34, 62), "periventricular", "--+", "mass",
       "Periventricular mass", (55, 80), 0.45,
       "immunosuppression after transplantation; progressive confusion over weeks; HIV infection",
       "Glioblastoma; Brain metastases; Toxoplasmosis; Tumefactive demyelination"),
    Dx("Lacunar infarct", 1, (1, 1), (10, 18), "deep", "-++", "focus",
       "Small deep lesion in an older adult", (62, 84), 0.4,
       "long-standing hypertension and diabetes; sudden pure motor weakness; "
       "slurred speech that started this morning",
       "Small vessel ischaemic disease; Perivascular space; Multiple sclerosis"),
    Dx("Neurocysticercosis", 1, (2, 3), (10, 22), "peripheral", "-+-", "cystic lesion",
       "Small cysts in a patient from an endemic region", (18, 45), 0.5,
       "a first generalised seizure; migration from an endemic region; recurrent seizures and pork consumption",
       "Tuberculoma; Brain metastases; Cerebral abscess; Toxoplasmosis"),
)


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


def _caption(rng: np.random.Generator, dx: Dx, plane: str, seq: str, sig: str,
             where: list[tuple[str, str, str]], sizes: list[float]) -> str:
    head = f"{plane.capitalize()} {SEQ_WORD[seq]} image shows"
    size = "small " if max(sizes) < 25 else "large " if max(sizes) > 60 else ""
    if len(where) == 1:
        side, lobe, depth = where[0]
        if dx.where == "edge":
            text = f"{head} a {size}{sig} {dx.noun} along the {side} {lobe} convexity."
        else:
            text = f"{head} a {size}{sig} {depth} {dx.noun} in the {side} {lobe} lobe."
    else:
        n = "multiple" if len(where) > 2 and rng.random() < 0.5 else ("two", "three")[len(where) - 2]
        order = ("periventricular", "subcortical", "cortical")
        depth = " and ".join(sorted({w[2] for w in where}, key=order.index))
        sides, lobes = sorted({w[0] for w in where}), sorted({w[1] for w in where})
        hemi = "both hemispheres" if len(sides) > 1 else f"the {sides[0]} hemisphere"
        text = (f"{head} {n} {size}{sig} {depth} {dx.noun}s in {hemi} "
                f"({' and '.join(lobes)} lobe{'s' if len(lobes) > 1 else ''}).")
    return text + (" No other abnormality is seen." if rng.random() < 0.3 else "")


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
    caption = _caption(rng, dx, plane, seq, sig, where, [max(b[2:]) for b in boxes])
    noise = rng.normal(0, 1, base.shape) * (0.008 + 0.017 * brain)
    def as_u8(a: np.ndarray) -> np.ndarray:  # same noise on both, so they differ only by lesions
        return np.clip(np.round((a + noise) * 255), 0, 255).astype(np.uint8)

    return Slice(as_u8(img), as_u8(base), masks, boxes, caption)


def _history(rng: np.random.Generator, dx: Dx) -> str:
    """Age + sex + one or two cues of the diagnosis mixed with shared generic symptoms, so
    text retrieval beats chance without being perfect (cues overlap between diagnoses)."""
    age = int(rng.integers(dx.ages[0], dx.ages[1] + 1))
    female = rng.random() < dx.female
    words = ("girl", "girl") if age < 16 and female else ("boy", "boy") if age < 16 else (
        ("woman", "female") if female else ("man", "male"))
    who = f"{age}-year-old {words[int(rng.integers(2))]}"
    cues = dx.cues.split("; ")
    c1, c2 = (cues[i] for i in rng.permutation(len(cues))[:2])
    g = GENERIC[int(rng.integers(len(GENERIC)))]
    forms = (f"A {who} with {c1} and {g}.",
             f"A {who} presented with {g}. Background: {c1}.",
             f"A {who} with {c1}. Also reported: {c2}.",
             f"A {who} presented with {g} and {c1}.")
    return forms[int(rng.integers(len(forms)))]


def _box_strings(rng: np.random.Generator, boxes: list[tuple[float, ...]]) -> tuple[str, str]:
    """bbox_gold / bbox_raters as the release writes them: repr of a dict of parallel lists."""
    gold = {k: [round(b[i], 2) for b in boxes] for i, k in enumerate(("x", "y", "width", "height"))}
    raters: dict[str, list] = {"rater": [], "x": [], "y": [], "width": [], "height": []}
    for x, y, w, h in boxes:
        for name in ("Dr.A", "Dr.B"):
            x1, y1, x2, y2 = np.clip(np.array([x, y, x + w, y + h]) + rng.normal(0, 1.5, 4), 0, SIZE)
            raters["rater"].append(name)
            for k, v in zip(("x", "y", "width", "height"), (x1, y1, x2 - x1, y2 - y1)):
                raters[k].append(round(float(v), 2))
    return repr(gold), repr(raters)


def generate(tpl: Templates | None = None) -> list[tuple[dict[str, str], Slice]]:
    """All rows (CSV fields as strings) with their rendered slices, deterministically."""
    tpl = tpl or load_templates()
    rng = np.random.default_rng(SEED)
    dxs = [d for d in DIAGNOSES for _ in range(d.cases)]
    dxs = [dxs[i] for i in rng.permutation(len(dxs))]
    counts = [SLICES_PER_CASE[i % len(SLICES_PER_CASE)] for i in range(len(dxs))]
    planes = [("axial", "sagittal", "coronal")[i % 3] for i in range(sum(counts))]
    planes = [planes[i] for i in rng.permutation(len(planes))]
    seqs, p = list(SEQ_WEIGHTS), np.array(list(SEQ_WEIGHTS.values()))
    out = []
    for n, (dx, count) in enumerate(zip(dxs, counts)):
        case_id = f"case{9001 + n}"
        history = _history(rng, dx)
        alt = dx.differential.split("; ")
        others = [alt[i] for i in rng.permutation(len(alt))[:rng.integers(2, 4)]]
        differential = [others[i] if i < len(others) else dx.name for i in rng.permutation(len(others) + 1)]
        date = f"{rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.{rng.integers(2015, 2024)}"
        for scan in range(1, count + 1):
            plane = planes.pop()
            mm = {"axial": rng.uniform(2, 52), "coronal": rng.uniform(-70, 38),
                  "sagittal": rng.choice([-1, 1]) * rng.uniform(14, 46)}[plane]
            sl = render(rng, tpl, dx, plane, float(mm), seqs[int(rng.choice(len(seqs), p=p / p.sum()))])
            gold, raters = _box_strings(rng, sl.boxes)
            row = {"filename": f"{case_id}_{scan:03d}.png", "caption": sl.caption, "case_id": case_id,
                   "scan_id": str(scan), "title": dx.title, "publication_date": date,
                   "clinical_history": history, "differential_diagnosis": "; ".join(differential),
                   "final_diagnosis": dx.name, "link": f"https://example.org/nova-demo/{case_id}",
                   "bbox_gold": gold, "bbox_raters": raters}
            out.append((row, sl))
    return out


def _write(dest: Path) -> None:
    from PIL import Image

    (dest / "images").mkdir(parents=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row, sl in generate():
        writer.writerow(row)
        Image.fromarray(sl.image).save(dest / "images" / row["filename"], format="PNG", compress_level=3)
    (dest / CSV_NAME).write_bytes(buf.getvalue().encode("utf-8"))
    (dest / MARKER).write_text(DEMO_VERSION + "\n", encoding="utf-8")


def is_complete(root: Path) -> bool:
    marker = Path(root) / MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == DEMO_VERSION


def _clear_stale(root: Path) -> None:
    """Remove an unfinished or older demo build, but never a directory holding other files."""
    if not root.exists():
        return
    ours = {CSV_NAME, "images", MARKER}
    if not root.is_dir() or not {p.name for p in root.iterdir()} <= ours:
        raise InputError("exists and is not a demo set; refusing to overwrite it", file=root)
    shutil.rmtree(root)


def build_demo(root: Path) -> Path:
    """Build the demo set into `root` and return it; a complete build of this version is kept.

    Files are written to a temporary sibling directory that is renamed into place at the end,
    so an interrupted build never leaves a half-written set behind.
    """
    root = Path(root).expanduser()
    if is_complete(root):
        return root
    _clear_stale(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    log.info("building demo set in %s", root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _write(tmp / "set")
        os.replace(tmp / "set", root)
    except OSError:
        if not is_complete(root):  # another process may have won the race; that is fine
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def demo_root(cache_dir: Path | None = None) -> Path:
    """Where the demo set lives (`<cache>/<DEMO_VERSION>`), built on first use. The cache is
    `cache_dir`, else $NOVA_MLFLOW_CACHE, else ~/.cache/nova_mlflow."""
    base = cache_dir or os.environ.get("NOVA_MLFLOW_CACHE") or Path.home() / ".cache" / "nova_mlflow"
    return build_demo(Path(base).expanduser() / DEMO_VERSION)
