"""Table 1, the splits table and Figure 4 as files: what a reader of a run gets to see."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.report import SOURCE_OURS, SOURCE_PAPER, paper
from nova_mlflow.report import localization as rl
from nova_mlflow.schemas import Answer, Box, Task
from nova_mlflow.scoring import ScoreContext, score
from nova_mlflow.report import published
from nova_mlflow.report.published import PUBLISHED_FILES
from nova_mlflow.scoring import localization as sl

PNG = b"\x89PNG\r\n\x1a\n"
PAPER_MODELS = ["Gemini 2.0 Flash", "Qwen2-VL-72B", "Qwen2.5-VL-72B"]
PAPER_TEXT = Path(__file__).parent / "fixtures" / "nova_paper_tables.txt"
FACT_SHEET = Path(__file__).resolve().parents[2] / "shared" / "docs" / "nova-benchmark.md"


@pytest.fixture(scope="module")
def demo_cases(demo_dir):
    from nova_mlflow.data import load_dataset

    return load_dataset(demo_dir).cases


def _answers(cases, boxes_for):
    return {(c.filename, Task.localization):
            Answer(filename=c.filename, task=Task.localization, text=json.dumps(boxes_for(c)))
            for c in cases}


def _jittered(seed: int = 7):
    rng = np.random.default_rng(seed)

    def boxes_for(c):
        out = []
        for b in c.gold_boxes:
            if rng.random() < 0.7:
                j = rng.normal(0, 0.2, 4) * np.array([b.width, b.height, b.width, b.height])
                out.append([b.x1 + j[0], b.y1 + j[1], b.x2 + j[2], b.y2 + j[3]])
        if rng.random() < 0.3:
            out.append([10, 10, 60, 60])
        return out
    return boxes_for


def _score(cases, boxes_for, model="gpt-4o"):
    return score(cases, _answers(cases, boxes_for), [Task.localization],
                 ScoreContext(model=model)).tasks[Task.localization]


def _files(ts, cases, out: Path) -> dict[str, Path]:
    files = rl.artifacts(ts, cases, out).files
    assert all(f.exists() for f in files)
    return {f.relative_to(out).as_posix(): f for f in files}


def test_table1_three_formats_with_the_papers_rows(tmp_path, demo_cases):
    ts = _score(demo_cases, _jittered())
    files = _files(ts, demo_cases, tmp_path)
    for ext in ("csv", "md", "html"):
        assert f"{rl.TABLE1_STEM}.{ext}" in files
    df = pd.read_csv(files["table1_localization.csv"], dtype=str, keep_default_na=False)
    assert list(df["model"])[:4] == ["gpt-4o", *PAPER_MODELS]
    assert list(df["source"])[:4] == [SOURCE_OURS] + [SOURCE_PAPER] * 3
    # then the published rows of definition (c), each naming its source file and commit
    waldo = df.iloc[4:]
    assert len(waldo) == len(PUBLISHED_FILES)
    assert all(s.startswith(published.SOURCE_LABEL) and "results/nova/" in s
               for s in waldo["source"])
    gemini = waldo[waldo["model"] == "Gemini 2.0 Flash (906 images)"].iloc[0]
    assert (gemini["Hit30 (c)"], gemini["Hit50 (c)"]) == ("18.10", "6.40")
    assert (waldo["mAP30"] == "").all()
    assert list(df.columns[2:8]) == ["mAP30", "mAP50", "mAP50-95", "ACC50", "TP30", "FP30"]

    m = ts.metrics
    ours = df.iloc[0]
    for col, key in [("mAP30", "mAP30"), ("mAP50", "mAP50"), ("mAP50-95", "mAP50_95"),
                     ("ACC50", "ACC50"), ("COCO mAP30", "coco_mAP30"), ("COCO mAP50", "coco_mAP50"),
                     ("COCO mAP50-95", "coco_mAP50_95")]:
        assert ours[col] == f"{100 * m[key]:.2f}", col
    assert ours["TP30"] == f"{int(m['TP30'])}/{int(m['GT'])}" and ours["FP30"] == str(int(m["FP30"]))
    assert 0 < m["mAP30"] < 1 and m["FP30"] > 0  # a non-trivial run, so the check means something

    qwen25 = df.iloc[3]  # the paper's figures, as printed (25.50 keeps its trailing zero)
    assert (qwen25["mAP30"], qwen25["mAP50-95"], qwen25["TP30"], qwen25["FP30"]) == \
        ("37.66", "11.23", "406/1068", "672")
    assert df.iloc[2]["ACC50"] == "25.50"
    assert (df.iloc[1:][["COCO mAP30", "COCO mAP50", "COCO mAP50-95"]] == "").all().all()
    assert ours["Hit30 (c)"] == f"{100 * m['hit30']:.2f}"

    md = files["table1_localization.md"].read_text()
    assert md.count(SOURCE_PAPER) == 3 and f"| gpt-4o | {SOURCE_OURS} | {ours['mAP30']} |" in md
    html = files["table1_localization.html"].read_text()
    assert html.count('class="paper"') == 3 + len(PUBLISHED_FILES) and "Qwen2.5-VL-72B" in html


def test_perfect_answers_give_100_and_empty_answers_0(tmp_path, demo_cases):
    ts = _score(demo_cases, lambda c: [b.as_list() for b in c.gold_boxes], model="perfect")
    df = pd.read_csv(_files(ts, demo_cases, tmp_path / "p")["table1_localization.csv"], dtype=str,
                     keep_default_na=False)
    gt = sum(len(c.gold_boxes) for c in demo_cases)
    row = df.iloc[0]
    assert row["model"] == "perfect"
    for col in ["mAP30", "mAP50", "mAP50-95", "ACC50", "COCO mAP30", "COCO mAP50", "COCO mAP50-95"]:
        assert row[col] == "100.00", col
    assert row["TP30"] == f"{gt}/{gt}" and row["FP30"] == "0"

    ts = _score(demo_cases, lambda c: [], model="silent")
    files = _files(ts, demo_cases, tmp_path / "e")
    row = pd.read_csv(files["table1_localization.csv"], dtype=str, keep_default_na=False).iloc[0]
    assert (row["mAP30"], row["COCO mAP30"], row["TP30"], row["FP30"]) == ("0.00", "0.00", f"0/{gt}", "0")
    assert files[rl.FIGURES["iou_hist"]].stat().st_size > 5_000  # drawn even with no box at all


def test_figures_are_real_pngs(tmp_path, demo_cases):
    from PIL import Image

    files = _files(_score(demo_cases, _jittered()), demo_cases, tmp_path)
    for rel in rl.FIGURES.values():
        assert rel.startswith("figures/") and rel in files
        f = files[rel]
        assert f.read_bytes()[:8] == PNG and f.stat().st_size > 20_000, rel
        with Image.open(f) as im:
            im.verify()
        with Image.open(f) as im:
            assert im.width >= 600 and im.height >= 300
            # not a blank canvas: a drawn figure has many distinct colours
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_splits_partition_the_cases(tmp_path, demo_cases):
    ts = _score(demo_cases, _jittered(3))
    files = _files(ts, demo_cases, tmp_path)
    df = pd.read_csv(files[rl.SPLITS_FILE], dtype={"group": str})
    n, m = len(demo_cases), ts.metrics
    assert set(df["split"]) == {"all", "plane", "n_gold_group", "size_class"}
    for split, sub in df.groupby("split"):
        assert sub["n_cases"].sum() == n, split
        assert sub["n_gold"].sum() == m["GT"], split
        assert sub["detected30"].sum() == m["TP30"], split  # same emitted-order matching
        assert sub["false_positives30"].sum() == m["FP30"], split
        # group mAP30s, weighted by their case counts, give back the run's mAP30
        assert (sub["mAP30"] * sub["n_cases"]).sum() / n == pytest.approx(m["mAP30"], abs=1e-3)
    allrow = df[df["split"] == "all"].iloc[0]
    assert allrow["detection_rate30"] == pytest.approx(m["TP30"] / m["GT"], abs=1e-4)
    assert set(df[df["split"] == "n_gold_group"]["group"]) <= {"0", "1", "2", "3+"}


def test_size_classes_at_the_documented_edges():
    def sq(side):
        return [Box(x1=0, y1=0, x2=side, y2=side)]

    assert [sl.size_class(sq(s)) for s in (10, 63.9, 64, 127.9, 128, 400)] == \
        ["small", "small", "medium", "medium", "large", "large"]
    assert sl.size_class(sq(10) + sq(200)) == "large"  # the largest box decides
    assert sl.size_class([]) == "none"
    assert [sl.n_gold_group(k) for k in (0, 1, 2, 3, 4)] == ["0", "1", "2", "3+", "3+"]


def test_example_sample_is_best_median_worst_with_filename_tiebreak():
    names = [f"case{i:04d}_001.png" for i in range(10)]
    ap = [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    iou = [0.9, 0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0, 0.0, 0.0]
    table = pd.DataFrame({"filename": names[::-1], "ap30": ap[::-1], "best_iou": iou[::-1]})
    picks = {g: [table["filename"].iat[i] for i in idx] for g, idx in rl.example_sample(table, k=3)}
    # ranked: 0, 1 (tie on both: filename), 2, 3, 4, 5, 6, then 7, 8, 9 tied at zero
    assert picks["best"] == names[0:3]
    assert picks["median"] == names[4:7]
    assert picks["worst"] == [names[9], names[8], names[7]]  # worst first
    shuffled = table.sample(frac=1, random_state=1).reset_index(drop=True)
    again = {g: [shuffled["filename"].iat[i] for i in idx] for g, idx in rl.example_sample(shuffled)}
    assert again == picks  # the order of the input rows does not matter
    small = rl.example_sample(table.head(4), k=3)  # no case shown twice
    shown = [i for _, idx in small for i in idx]
    assert len(shown) == len(set(shown)) == 4


def test_evaluate_logs_table1_and_figure4(tmp_path, demo_dir, demo_cases):
    from conftest import run_store

    rows = [{"filename": c.filename, "task": "localization",
             "text": json.dumps([b.as_list() for b in c.gold_boxes])} for c in demo_cases]
    f = tmp_path / "out.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--model", "gpt-4o",
                                    "--outputs", str(f), "--json"])
    assert res.exit_code == 0, res.stderr
    client = run_store(tmp_path)
    run = next(r for e in client.search_experiments() for r in client.search_runs([e.experiment_id]))
    names = {a.path for a in client.list_artifacts(run.info.run_id, "results")}
    figs = {a.path for a in client.list_artifacts(run.info.run_id, "results/figures")}
    for ext in ("csv", "md", "html"):
        assert f"results/table1_localization.{ext}" in names
    assert f"results/{rl.SPLITS_FILE}" in names
    assert {f"results/{p}" for p in rl.FIGURES.values()} <= figs
    csv = Path(client.download_artifacts(run.info.run_id, "results/table1_localization.csv",
                                         str(tmp_path)))
    row = pd.read_csv(csv, dtype=str).iloc[0]
    assert row["model"] == "gpt-4o" and row["mAP30"] == "100.00"


def paper_text_tables(text: str) -> dict[int, tuple[list[str], dict[str, list[str]]]]:
    """{table number: (column names, {model: values as printed})} parsed from the quoted
    paragraphs "Paper, Table N (col / col / ...): Model v / v / ...; Model v / v ...."."""
    out = {}
    for m in re.finditer(r"^Paper, Table (\d) \((.*?)\):\s*(.*?)(?:\n\n|\Z)", text, re.DOTALL | re.MULTILINE):
        columns = [c.strip() for c in m.group(2).split(" / ")]
        rows = {}
        for chunk in " ".join(m.group(3).split()).rstrip(".").split(";"):
            row = re.fullmatch(r"(.+?) (\d[\d.]*(?:/\d+)?(?: / \d[\d.]*(?:/\d+)?)+)",
                               chunk.strip())
            assert row, chunk
            rows[row.group(1)] = row.group(2).split(" / ")
        out[int(m.group(1))] = (columns, rows)
    return out


def test_paper_tables_hold_what_the_paper_prints():
    """paper.py's figures, printed as our tables print them, against the paper's text."""
    quoted = paper_text_tables(PAPER_TEXT.read_text(encoding="utf-8"))
    assert sorted(quoted) == [1, 2, 3]
    for n, (table, cols) in {1: (paper.TABLE1, paper.COLUMNS1), 2: (paper.TABLE2, paper.COLUMNS2),
                             3: (paper.TABLE3, paper.COLUMNS3)}.items():
        columns, rows = quoted[n]
        assert [name for name, _ in cols.values()] == columns, n
        ours = {}
        for r in table:
            printed = [paper.printed(r[key], dec) for key, (_, dec) in cols.items()]
            if n == 1:  # TP30 is printed as TP/GT
                printed[list(cols).index("TP30")] += f"/{r['GT']}"
            ours[r["model"]] = printed
        assert ours == rows, n
        assert list(ours) == list(rows), n  # and in the paper's row order
    assert [r["model"] for r in paper.TABLE1] == PAPER_MODELS


def test_quoted_paper_text_is_the_fact_sheets():
    """The fixture is a verbatim copy of the fact sheet's quotes (when ../shared is here)."""
    if not FACT_SHEET.exists():
        pytest.skip(f"{FACT_SHEET} not found (../shared is absent)")
    sheet = FACT_SHEET.read_text(encoding="utf-8")
    paragraphs = PAPER_TEXT.read_text(encoding="utf-8").split("\n\n")[1:]
    assert len(paragraphs) == 3
    for para in paragraphs:
        assert para.strip() in sheet, para[:60]
    assert paper_text_tables(sheet) == paper_text_tables(PAPER_TEXT.read_text(encoding="utf-8"))



@pytest.mark.parametrize("axis_off", [True, False])
def test_fixed_title_position_draws_what_matplotlib_would_place(tmp_path, monkeypatch, axis_off):
    """The figures' style pins titles to the top of their axes (`axes.titley` 1.0) instead of
    letting matplotlib place them above top ticks, which it measures by building every
    tick; with ticks at the bottom only (every figure here) the pixels are the same."""
    from PIL import Image

    from nova_mlflow.report import plots

    def draw(titley, name):
        monkeypatch.setitem(plots.STYLE, "axes.titley", titley)
        fig, axes = plots.new_figure(2, 1, width=3, height=3)
        for i, ax in enumerate(axes.flat):
            ax.plot([0, 1, 2], [i, 2, 1])
            ax.set_title(f"panel {i}\nsecond line", fontsize=9)
            if axis_off:
                ax.axis("off")
        plots.lay_out(fig, plots.Margins(left=0.4, bottom=0.4, head=0.7), wgap=0.5)
        return np.asarray(Image.open(plots.save(fig, tmp_path / name)))

    auto, pinned = draw(None, "auto.png"), draw(1.0, "pinned.png")
    assert auto.shape == pinned.shape and (auto == pinned).all()
