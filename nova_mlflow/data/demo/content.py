"""What the demo set says: its diagnoses, captions, clinical histories and box strings.

Each diagnosis carries what the renderer needs (lesion signal, count, size, where) and what
the text needs (noun, cues for the history, the differential). Texts come from templates with
seeded choices, so retrieval and keyword matching are meaningful but not trivial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 480
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
class Seen:
    """What a rendered slice shows, for its caption: plane, sequence, signal word, and per
    lesion where it is (side, lobe, depth) and its size (the box's longer side, px)."""

    plane: str
    seq: str
    sig: str
    where: list[tuple[str, str, str]]
    sizes: list[float]


def caption(rng: np.random.Generator, dx: Dx, seen: Seen) -> str:
    """The expert caption of a demo slice, from a per-diagnosis template."""
    plane, sig, where, sizes = seen.plane, seen.sig, seen.where, seen.sizes
    head = f"{plane.capitalize()} {SEQ_WORD[seen.seq]} image shows"
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


def history(rng: np.random.Generator, dx: Dx) -> str:
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



def box_strings(rng: np.random.Generator, boxes: list[tuple[float, ...]]) -> tuple[str, str]:
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
