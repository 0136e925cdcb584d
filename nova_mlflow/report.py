"""Human-facing summaries of a run: a plain-text table for the terminal, Markdown for MLflow.

Fractions print as percentages (like the paper's tables); counts print as integers.
"""

from __future__ import annotations

from collections.abc import Mapping

COUNT_KEYS = {"TP30", "FP30", "GT", "n_cases", "answered", "missing", "parse_failures",
              "api_errors", "refused", "vocab_size", "unique_captions"}
HEADLINE = {
    "localization": ["mAP30", "mAP50", "mAP50_95", "ACC50", "TP30", "FP30", "GT", "coco_mAP30",
                     "coco_mAP50", "coco_mAP50_95", "f1_30", "f1_50"],
    "captioning": ["clinical_f1", "modality_f1", "bleu", "meteor", "binary_f1"],
    "diagnosis": ["top1", "top5", "coverage", "entropy"],
}
STATUS = ["n_cases", "answered", "missing", "parse_failures", "api_errors", "refused"]


def fmt(key: str, value: float) -> str:
    name = key.rsplit("/", 1)[-1]
    if name in COUNT_KEYS:
        return f"{int(round(value))}"
    if name in {"entropy", "gt_entropy", "mean_words", "gt_mean_words"}:
        return f"{value:.2f}"
    return f"{100 * value:.2f}"


def rows(metrics: Mapping[str, float]) -> list[tuple[str, str, str]]:
    out = []
    for task, keys in HEADLINE.items():
        for k in keys + STATUS:
            full = f"{task}/{k}"
            if full in metrics:
                out.append((task, k, fmt(full, metrics[full])))
    return out


def text_table(metrics: Mapping[str, float], title: str = "") -> str:
    body = rows(metrics)
    if not body:
        return title
    w = [max(len(r[i]) for r in body + [("task", "metric", "value")]) for i in range(3)]
    line = f"+-{'-' * w[0]}-+-{'-' * w[1]}-+-{'-' * w[2]}-+"
    out = [title] if title else []
    out += [line, f"| {'task':<{w[0]}} | {'metric':<{w[1]}} | {'value':>{w[2]}} |", line]
    last = None
    for task, k, v in body:
        if last and task != last:
            out.append(line)
        out.append(f"| {task if task != last else '':<{w[0]}} | {k:<{w[1]}} | {v:>{w[2]}} |")
        last = task
    out.append(line)
    out.append("Fractions in percent (as in the paper's tables); counts as integers.")
    return "\n".join(out)


def markdown_table(metrics: Mapping[str, float], title: str) -> str:
    out = [f"# {title}", "", "| task | metric | value |", "|---|---|---:|"]
    out += [f"| {t} | {k} | {v} |" for t, k, v in rows(metrics)]
    out += ["", "Fractions in percent (as in the paper's tables); counts as integers."]
    return "\n".join(out) + "\n"
