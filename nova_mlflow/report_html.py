"""One self-contained HTML page per run: headline metrics, Tables 1-3, Figures 4-6.

MLflow's artifact viewer shows HTML in a sandbox where relative links to sibling artifacts do
not load, so figures are embedded as base64 PNG and tables are inlined from the files the task
hooks wrote.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from html import escape
from pathlib import Path

from nova_mlflow.report import rows

SECTIONS = [
    ("Task 1: anomaly localization", "table1_localization.html", "fig4"),
    ("Task 2: image description", "table2_captioning.html", "figure5"),
    ("Task 3: diagnostic reasoning", "table3_diagnosis.html", "figure6"),
]
CSS = """body{font-family:system-ui,-apple-system,sans-serif;margin:2em auto;max-width:1100px;
color:#222}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 9px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child,td:nth-child(2){text-align:left}
tr.paper{color:#666;font-style:italic}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.meta{color:#555}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));
gap:.3em 1.5em}.kv{display:flex;justify-content:space-between;border-bottom:1px dotted #ddd}"""


def _table_fragment(path: Path) -> str:
    """The <table> of a table file written by report.write_table (without its page chrome)."""
    if not path.exists():
        return ""
    m = re.search(r"<table>.*?</table>", path.read_text(encoding="utf-8"), re.S)
    return m.group(0) if m else ""


def _figures(out_dir: Path, prefix: str) -> list[Path]:
    return sorted(p for p in out_dir.rglob("*.png") if p.name.startswith(prefix))


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def build_report(out_dir: Path, metrics: Mapping[str, float], title: str,
                 params: Mapping[str, object]) -> Path:
    """Write out_dir/report.html from the files already in out_dir; returns its path."""
    keys = ["model", "provider", "frame", "data", "dataset_digest", "n_cases", "judge",
            "prompt.localization.version", "prompt.captioning.version", "prompt.diagnosis.version"]
    meta = " · ".join(f"{k}: <b>{escape(str(params[k]))}</b>" for k in keys if params.get(k) not in (None, ""))
    kv = "".join(f'<div class="kv"><span>{escape(t)}/{escape(k)}</span><b>{escape(v)}</b></div>'
                 for t, k, v in rows(metrics))
    parts = [f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title><style>{CSS}</style>",
             f"<h1>{escape(title)}</h1><p class='meta'>{meta}</p>",
             "<h2>Headline metrics</h2><p class='meta'>Fractions in percent, counts as integers.</p>",
             f"<div class='grid'>{kv}</div>"]
    for heading, table, fig_prefix in SECTIONS:
        frag = _table_fragment(out_dir / table)
        figs = _figures(out_dir, fig_prefix)
        if not frag and not figs:
            continue
        parts.append(f"<h2>{escape(heading)}</h2>{frag}")
        parts += [_img(f) for f in figs]
    parts.append("<p class='meta'>Rows in italics are figures reported by the NOVA paper "
                 "(Bercea et al., NeurIPS 2025 Datasets &amp; Benchmarks), not re-computed here.</p>")
    path = out_dir / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path
