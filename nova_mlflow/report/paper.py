"""The figures the NOVA paper reports, as data, so our tables can print them beside ours.

Source: C. I. Bercea et al., "NOVA: A Benchmark for Anomaly Localization and Clinical
Reasoning in Brain MRI", NeurIPS 2025 Datasets & Benchmarks, arXiv:2505.14064 —
Table 1 (anomaly localization), Table 2 (image description), Table 3 (diagnostic reasoning).
Transcribed via the project's fact sheet (docs/nova-benchmark.md in the shared docs).

Values are kept exactly as printed: percentages as numbers in percent (20.16 means 20.16 %),
counts as integers, entropy in bits. Keys are this project's metric names (interface.md), so
`TABLE1[0]["mAP30"]` sits beside our `localization/mAP30` (a fraction: multiply ours by 100).
`COLUMNS*` give the paper's column header and the number of decimals it prints, so a value
rendered with `printed()` reads as in the paper (25.50 stays "25.50", not "25.5").
"""

from __future__ import annotations

CITATION = ("Bercea et al., NOVA: A Benchmark for Anomaly Localization and Clinical Reasoning "
            "in Brain MRI, NeurIPS 2025 Datasets & Benchmarks, arXiv:2505.14064")

#: Table 1, anomaly localization (NOVA protocol). TP30 is printed as "TP/GT", e.g. 227/1068.
COLUMNS1: dict[str, tuple[str, int]] = {
    "mAP30": ("mAP30", 2), "mAP50": ("mAP50", 2), "mAP50_95": ("mAP50-95", 2),
    "ACC50": ("ACC50", 2), "TP30": ("TP30", 0), "FP30": ("FP30", 0),
}
TABLE1: list[dict] = [
    {"model": "Gemini 2.0 Flash", "mAP30": 20.16, "mAP50": 7.37, "mAP50_95": 1.99,
     "ACC50": 8.83, "TP30": 227, "GT": 1068, "FP30": 899},
    {"model": "Qwen2-VL-72B", "mAP30": 25.02, "mAP50": 15.09, "mAP50_95": 6.44,
     "ACC50": 25.50, "TP30": 338, "GT": 1068, "FP30": 1163},
    {"model": "Qwen2.5-VL-72B", "mAP30": 37.66, "mAP50": 24.49, "mAP50_95": 11.23,
     "ACC50": 28.48, "TP30": 406, "GT": 1068, "FP30": 672},
]

#: Table 2, image description: keyword F1 (clinical / modality), BLEU, METEOR, binary F1.
COLUMNS2: dict[str, tuple[str, int]] = {
    "clinical_f1": ("Clinical F1", 1), "modality_f1": ("Modality F1", 1), "bleu": ("BLEU", 2),
    "meteor": ("METEOR", 1), "binary_f1": ("Binary F1", 1),
}
TABLE2: list[dict] = [
    {"model": "Gemini 2.0 Flash", "clinical_f1": 19.8, "modality_f1": 59.8, "bleu": 1.83,
     "meteor": 15.2, "binary_f1": 5.3},
    {"model": "GPT-4o", "clinical_f1": 15.7, "modality_f1": 49.3, "bleu": 0.92,
     "meteor": 17.5, "binary_f1": 11.3},
    {"model": "Qwen2.5-VL-72B", "clinical_f1": 13.6, "modality_f1": 45.3, "bleu": 1.08,
     "meteor": 17.1, "binary_f1": 2.4},
]

#: Table 3, diagnostic reasoning: Top-1 / Top-5 accuracy and coverage in percent, entropy in bits.
COLUMNS3: dict[str, tuple[str, int]] = {
    "top1": ("Top-1", 1), "top5": ("Top-5", 1), "coverage": ("Coverage", 1),
    "entropy": ("Entropy", 2),
}
TABLE3: list[dict] = [
    {"model": "Gemini 2.0 Flash", "top1": 22.1, "top5": 37.4, "coverage": 29.4, "entropy": 7.71},
    {"model": "GPT-4o", "top1": 24.2, "top5": 38.4, "coverage": 31.9, "entropy": 7.64},
    {"model": "Qwen2.5-VL-72B", "top1": 22.4, "top5": 35.2, "coverage": 26.1, "entropy": 7.26},
]


def printed(value: float, decimals: int) -> str:
    """A value as the paper prints it (fixed decimals; counts without any)."""
    return f"{int(value)}" if decimals == 0 else f"{value:.{decimals}f}"
