"""One self-contained HTML page per run: headline metrics, Tables 1-3, Figures 4-6.

MLflow's artifact viewer shows HTML in a sandbox where relative links to sibling artifacts do
not load, so figures are embedded as base64 PNG and each task's table is inlined from the
Section its report module returned.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape
from pathlib import Path

from nova_mlflow.report.tables import Section, rows

CSS = """body{font-family:system-ui,-apple-system,sans-serif;margin:2em auto;max-width:1100px;
color:#222}h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 9px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child,td:nth-child(2){text-align:left}
tr.paper{color:#666;font-style:italic}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.meta{color:#555}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));
gap:.3em 1.5em}.kv{display:flex;justify-content:space-between;border-bottom:1px dotted #ddd}"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def build_report(out_dir: Path, metrics: Mapping[str, float], title: str,
                 params: Mapping[str, object], sections: list[Section]) -> Path:
    """Write out_dir/report.html: headline metrics, then each task's table and figures."""
    keys = ["model", "provider", "frame", "data", "dataset_digest", "n_cases", "judge",
            "prompt.localization.version", "prompt.captioning.version", "prompt.diagnosis.version"]
    meta = " · ".join(f"{k}: <b>{escape(str(params[k]))}</b>" for k in keys if params.get(k) not in (None, ""))
    kv = "".join(f'<div class="kv"><span>{escape(t)}/{escape(k)}</span><b>{escape(v)}</b></div>'
                 for t, k, v in rows(metrics))
    parts = [f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title><style>{CSS}</style>",
             f"<h1>{escape(title)}</h1><p class='meta'>{meta}</p>",
             "<h2>Headline metrics</h2><p class='meta'>Fractions in percent, counts as integers.</p>",
             f"<div class='grid'>{kv}</div>"]
    for section in sections:
        if not section.table_html and not section.figures:
            continue
        parts.append(f"<h2>{escape(section.heading)}</h2>{section.table_html}")
        parts += [_img(f) for f in section.figures]
    parts.append("<p class='meta'>Rows in italics are figures reported by the NOVA paper "
                 "(Bercea et al., NeurIPS 2025 Datasets &amp; Benchmarks), not re-computed here.</p>")
    path = out_dir / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path


def build_page(out_dir: Path, title: str, sections: list[tuple[str, str]]) -> Path:
    """out_dir/report.html from (heading, HTML fragment) sections: a sweep parent's page."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{CSS}</style><h1>{escape(title)}</h1>"]
    parts += [f"<h2>{escape(heading)}</h2>{body}" for heading, body in sections]
    path = out_dir / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    return path
