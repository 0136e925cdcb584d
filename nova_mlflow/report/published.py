"""Published zero-shot NOVA figures of localization definition (c) (hit rate), as data.

Why: Table 1 prints these beside our `localization/hit30`, `hit50`, `mean_iou`, each row
naming its source. Definition (c) is metrics/hit_rate.py. All values are in PERCENT as
published (18.10 means 18.10 %; ours are fractions: multiply by 100), keys named after ours.

Source: GitHub repository bkainz/WALDO_MICCAI26_demo (Kainz, Mueller, Baugh, Bercea, "WALDO",
MICCAI 2026; results files MIT-licensed with the repository).
- PUBLISHED_FILES: the "metrics" block of each `results/nova/nova_zeroshot_*.json`, verbatim
  (its "mAP@30", "mAP@50", "avg_iou", "n_samples"), at the commit we read. The 906-image
  files' aggregates recompute from their own per-image "iou" lists (tested for Gemini in
  tests/test_hit_rate.py). The GPT-4o files hold 50 images each: the first 50 rows of the
  metadata (cases 0183 ... 0043), not a random sample.
- WALDO_PAPER_TABLE: the zero-shot rows of the WALDO paper's NOVA table as its README prints
  them (one decimal); "(rep.)" there marks the authors' reproduction; the GPT-4o row is the
  mean of the two n=50 runs.
The rows marked `later_setup` (commit 37fed6e) come from a later pipeline (config: images
480 x 480, temperature 0.1, at most 3 boxes for the Gemma / Mistral runs) and are listed only
in results/README.md, not in the paper table.
"""

from __future__ import annotations

REPOSITORY = "bkainz/WALDO_MICCAI26_demo"
#: How Table 1 marks these rows (italic like the paper's rows: figures not computed here).
SOURCE_LABEL = "reported by the NOVA authors' WALDO code (definition c)"
_C_FEA = "fea4902a49cb5bf6e6a717f6755decd4c942df38"
_C_505 = "50572f13536d6c92e12aa7c353fc05da10583f1d"
_C_589 = "5891c31a45c1986b571c13e91fb01df717b07604"
_C_37F = "37fed6efed29d2e098be681d2fa73f80cd2ffd96"
_DIR = "results/nova/"

#: One row per published zero-shot per-image file (percent, as in the file's "metrics").
PUBLISHED_FILES: list[dict] = [
    {"model": "Gemini 2.0 Flash", "n_images": 906, "hit30": 18.101545253863133,
     "hit50": 6.401766004415011, "mean_iou": 15.175097087005748,
     "path": _DIR + "nova_zeroshot_gemini20flash.json", "commit": _C_FEA, "later_setup": False},
    {"model": "Qwen2.5-VL-72B", "n_images": 906, "hit30": 36.42384105960265,
     "hit50": 23.399558498896248, "mean_iou": 23.642223118299963,
     "path": _DIR + "nova_zeroshot_qwen25_72b.json", "commit": _C_FEA, "later_setup": False},
    {"model": "Qwen3-VL-32B", "n_images": 906, "hit30": 20.41942604856512,
     "hit50": 13.79690949227373, "mean_iou": 13.83658141243098,
     "path": _DIR + "nova_zeroshot_qwen3_32b.json", "commit": _C_505, "later_setup": False},
    {"model": "Qwen3-VL-235B", "n_images": 906, "hit30": 36.31346578366446,
     "hit50": 20.08830022075055, "mean_iou": 25.10832944680211,
     "path": _DIR + "nova_zeroshot_qwen3_235b.json", "commit": _C_505, "later_setup": False},
    {"model": "GPT-4o (run 1)", "n_images": 50, "hit30": 18.0, "hit50": 4.0,
     "mean_iou": 14.032668169104145,
     "path": _DIR + "nova_zeroshot_gpt4o_run1.json", "commit": _C_589, "later_setup": False},
    {"model": "GPT-4o (run 2)", "n_images": 50, "hit30": 20.0, "hit50": 2.0,
     "mean_iou": 14.346322400617947,
     "path": _DIR + "nova_zeroshot_gpt4o_run2.json", "commit": _C_589, "later_setup": False},
    {"model": "Gemma-4-31B", "n_images": 906, "hit30": 39.735099337748345,
     "hit50": 22.29580573951435, "mean_iou": 24.903300070128093,
     "path": _DIR + "nova_zeroshot_gemma4_31b.json", "commit": _C_37F, "later_setup": True},
    {"model": "Gemma-4-E4B", "n_images": 906, "hit30": 7.174392935982341,
     "hit50": 2.980132450331126, "mean_iou": 5.068812070144748,
     "path": _DIR + "nova_zeroshot_gemma4_e4b.json", "commit": _C_37F, "later_setup": True},
    {"model": "Mistral-Small-3.2-24B", "n_images": 906, "hit30": 22.40618101545254,
     "hit50": 8.27814569536424, "mean_iou": 17.3989291850846,
     "path": _DIR + "nova_zeroshot_mistral_small_24b.json", "commit": _C_37F, "later_setup": True},
    {"model": "Qwen2.5-VL-7B", "n_images": 906, "hit30": 33.443708609271525,
     "hit50": 17.108167770419428, "mean_iou": 24.50652502975875,
     "path": _DIR + "nova_zeroshot_qwen25vl_7b.json", "commit": _C_37F, "later_setup": True},
]

#: The WALDO paper's zero-shot NOVA rows as README.md prints them (percent, one decimal).
WALDO_PAPER_TABLE_SOURCE = {"path": "README.md", "commit": "0f2e58f47c99bd0b12edfab9fd69d84b5b7afc0e"}
WALDO_PAPER_TABLE: list[dict] = [
    {"model": "Qwen2.5-VL-72B", "n_images": 906, "hit30": 36.4, "hit50": 23.4, "mean_iou": 23.6,
     "note": "zero-shot (rep.)"},
    {"model": "GPT-4o", "n_images": 50, "hit30": 19.0, "hit50": 3.0, "mean_iou": 14.2,
     "note": "mean of two n=50 runs"},
    {"model": "Qwen3-VL-32B", "n_images": 906, "hit30": 20.4, "hit50": 13.8, "mean_iou": 13.8,
     "note": "zero-shot"},
    {"model": "Qwen3-VL-235B", "n_images": 906, "hit30": 36.3, "hit50": 20.1, "mean_iou": 25.1,
     "note": "zero-shot"},
    {"model": "Gemini 2.0 Flash", "n_images": 906, "hit30": 18.1, "hit50": 6.4, "mean_iou": 15.2,
     "note": "zero-shot (rep.)"},
]


def source_of(row: dict) -> str:
    """The citation a Table 1 row prints, e.g. 'bkainz/WALDO_MICCAI26_demo results/nova/... @fea4902'."""
    path = row.get("path", WALDO_PAPER_TABLE_SOURCE["path"])
    commit = row.get("commit", WALDO_PAPER_TABLE_SOURCE["commit"])
    return f"{REPOSITORY} {path} @{commit[:7]}"
