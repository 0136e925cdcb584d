"""Human-facing summaries of a run: a plain-text table for the terminal, Markdown for MLflow.

Fractions print as percentages (like the paper's tables); counts print as integers; costs
in USD, or "cost unknown" when tokens were counted but the model has no known price (no
cost metric is logged then: pricing.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

COUNT_KEYS = {"TP30", "FP30", "GT", "n_cases", "answered", "missing", "parse_failures",
              "api_errors", "refused", "vocab_size", "unique_captions", "no_reference",
              "unique_captions_normalized", "gt_vocab_size", "gt_unique_captions",
              "gt_unique_captions_normalized"}
HEADLINE = {
    "localization": ["mAP30", "mAP50", "mAP50_95", "ACC50", "TP30", "FP30", "GT", "coco_mAP30",
                     "coco_mAP50", "coco_mAP50_95", "hit30", "hit50", "mean_iou", "f1_30",
                     "f1_50"],
    "captioning": ["clinical_f1", "modality_f1", "bleu", "meteor", "binary_f1"],
    "diagnosis": ["top1", "top5", "coverage", "entropy", "no_reference"],
}
STATUS = ["n_cases", "answered", "missing", "parse_failures", "api_errors", "refused"]
#: cost metric -> the metric whose presence says the cost was asked for (tokens counted)
COSTS = {"cost_usd": "input_tokens", "judge_cost_usd": "judge_calls"}
UNKNOWN_COST = "cost unknown"


#: Metrics shown in their own units (counts, bits, words); the others are fractions (percent).
RAW_KEYS = COUNT_KEYS | {"entropy", "gt_entropy", "mean_words", "gt_mean_words"}


def is_raw(key: str) -> bool:
    """True for a metric printed as it is (a count, bits, words), False for a fraction."""
    return key.rsplit("/", 1)[-1] in RAW_KEYS


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
        for cost, counted in COSTS.items():
            if f"{task}/{counted}" in metrics:
                value = metrics.get(f"{task}/{cost}")
                out.append((task, cost, UNKNOWN_COST if value is None else f"${value:,.4f}"))
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


# --- paper-style tables (Tables 1-3) -----------------------------------------------------

SOURCE_OURS = "this run"
SOURCE_PAPER = "reported by the paper (Bercea et al. 2025)"


def paper_table(ours: dict[str, str], paper_rows: list[dict[str, str]], model: str):
    """Our row first, then the paper's rows, each marked with where its numbers come from.

    Values are already formatted strings (percent, counts "TP/GT"), so the three output
    formats show exactly the same figures.
    """
    import pandas as pd

    rows = [{"model": model, "source": SOURCE_OURS, **ours}]
    rows += [{"source": SOURCE_PAPER, **r} for r in paper_rows]
    return pd.DataFrame(rows).fillna("")


@dataclass
class Section:
    """What one task adds to a run's report: its table (as HTML), its figures, its files."""

    heading: str
    table_html: str = ""
    figures: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def table_html(df: Any) -> str:
    """The <table> of a paper-style table; the paper's rows get class "paper"."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr" + (' class="paper"' if any(str(v).startswith("reported by") for v in row)
                  else "") + ">"
        + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_table(df: Any, stem: str, out_dir: Path | str, title: str) -> list[Path]:
    """The same table as CSV (for scripts), Markdown (for people) and HTML (for the UI)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, html_path = (out / f"{stem}.{ext}" for ext in ("csv", "md", "html"))
    df.to_csv(csv_path, index=False)
    cols = list(df.columns)
    md = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;"
        "text-align:right}td:first-child,td:nth-child(2),th{text-align:left}"
        "tr.paper{color:#555;font-style:italic}</style>"
        f"<h1>{escape(title)}</h1>{table_html(df)}"
        "<p>Percentages, as in the paper; rows in italics are the paper's reported figures.</p>",
        encoding="utf-8")
    return [csv_path, md_path, html_path]
