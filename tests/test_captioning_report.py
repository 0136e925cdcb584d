"""Task 2 scoring on the demo set: perfect / empty answer files, cases without a reference,
the per-case table, Table 2 with the paper's rows, results by plane and sequence, Figure 5,
and the whole path through `nova-mlflow evaluate` into MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import run_store

from nova_mlflow.report import SOURCE_OURS, SOURCE_PAPER
from nova_mlflow.schemas import Answer, Task
from nova_mlflow.report import captioning as rc
from nova_mlflow.scoring import captioning as sc
from nova_mlflow.scoring.common import ScoreContext

INTERFACE = ["clinical_precision", "clinical_recall", "clinical_f1", "modality_precision",
             "modality_recall", "modality_f1", "bleu", "meteor", "binary_accuracy", "binary_f1",
             "vocab_size", "unique_captions", "mean_words", "gt_vocab_size",
             "gt_unique_captions", "gt_mean_words"]
TEXT = ["clinical_precision", "clinical_recall", "clinical_f1", "clinical_f1_case_mean",
        "modality_precision", "modality_recall", "modality_f1", "modality_f1_case_mean", "bleu",
        "meteor"]


@pytest.fixture(scope="module")
def cases(demo_dir):
    from nova_mlflow.data import load_dataset

    return load_dataset(demo_dir).cases


def _answers(cases, texts, model="test-model"):
    return {(c.filename, Task.captioning): Answer(filename=c.filename, task=Task.captioning,
                                                 text=t, model=model)
            for c, t in zip(cases, texts)}


def test_perfect_answers_score_one(cases):
    ts = sc.score(cases, _answers(cases, [c.caption for c in cases]), ScoreContext(model="m"))
    m = ts.metrics
    for k in INTERFACE + ["clinical_f1_case_mean", "modality_f1_case_mean", "no_reference"]:
        assert k in m, k
    for k in TEXT:
        if k != "meteor":
            assert m[k] == pytest.approx(1.0), k
    assert 0.95 < m["meteor"] < 1.0  # METEOR's fragmentation penalty never quite vanishes
    assert m["binary_accuracy"] == 1.0 and m["binary_f1"] == 1.0
    assert (m["vocab_size"], m["unique_captions"], m["mean_words"]) == (
        m["gt_vocab_size"], m["gt_unique_captions"], m["gt_mean_words"])
    assert m["answered"] == len(cases) and m["no_reference"] == 0
    assert ts.context.model == "m"


def test_empty_answers_score_zero(cases):
    ts = sc.score(cases, _answers(cases, [""] * len(cases)), ScoreContext())
    m = ts.metrics
    assert m["unique_captions"] == 1  # every answer is the empty caption: one value
    for k in TEXT + ["binary_accuracy", "binary_f1", "vocab_size", "unique_captions_normalized",
                     "mean_words"]:
        assert m[k] == 0.0, k
    assert m["parse_failures"] == len(cases) and m["gt_vocab_size"] > 20
    assert set(ts.table["pred_binary"]) == {""} and not ts.table["binary_correct"].any()


def test_cases_without_reference_are_left_out_and_counted(cases):
    no_ref = [c.model_copy(update={"caption": None}) for c in cases[:3]]
    mixed = no_ref + list(cases[3:])
    texts = ["completely unrelated words"] * 3 + [c.caption for c in cases[3:]]
    ts = sc.score(mixed, _answers(mixed, texts), ScoreContext())
    assert ts.metrics["no_reference"] == 3
    assert ts.metrics["clinical_f1"] == pytest.approx(1.0)  # the 3 wrong answers do not count
    rows = ts.table.iloc[:3]
    assert rows["clinical_f1"].isna().all() and rows["meteor"].isna().all()
    assert ts.table["clinical_f1"].iloc[3:].notna().all()


def test_per_case_table_shows_hits_and_misses(cases):
    c = cases[0]
    ts = sc.score([c], _answers([c], ["Coronal image: hyperintense lesion with mass effect."]),
                  ScoreContext())
    row = ts.table.iloc[0]
    gold = sc.cap.keywords(c.caption)
    assert set(filter(None, row["clinical_hits"].split("; "))) == gold.clinical & {
        "hyperintense", "lesion", "mass effect"}
    assert set(filter(None, row["clinical_missed"].split("; "))) == gold.clinical - {
        "hyperintense", "lesion", "mass effect"}
    assert ("coronal" in row["modality_hits"]) == ("coronal" in gold.modality)
    for col in ["filename", "plane", "sequence", "status", "caption_gt", "caption_pred",
                "clinical_extra", "modality_missed", "modality_f1", "meteor", "gt_binary",
                "pred_binary", "n_words", "error"]:
        assert col in ts.table.columns, col


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_artifacts_table2_with_paper_rows_groups_and_figures(cases, tmp_path):
    texts = [c.caption if i % 2 else "Axial FLAIR image shows a hyperintense lesion."
             for i, c in enumerate(cases)]
    ts = sc.score(cases, _answers(cases, texts), ScoreContext(model="gemini-2.0-flash"))
    files = rc.artifacts(ts, cases, tmp_path).files
    names = {f.name for f in files}
    assert {"table2_captioning.csv", "table2_captioning.md", "table2_captioning.html",
            "captioning_by_plane_sequence.csv", "figure5_language.png",
            "captioning_by_plane_sequence.png"} <= names
    assert all(f.exists() for f in files)

    t2 = pd.read_csv(tmp_path / "table2_captioning.csv", dtype=str)
    assert list(t2.columns) == ["model", "source", "Clinical F1", "Modality F1", "BLEU",
                                "METEOR", "Binary F1"]
    assert t2.iloc[0]["model"] == "gemini-2.0-flash" and t2.iloc[0]["source"] == SOURCE_OURS
    assert float(t2.iloc[0]["METEOR"]) == pytest.approx(100 * ts.metrics["meteor"], abs=0.01)
    paper = t2.iloc[1:]
    assert list(paper["model"]) == ["Gemini 2.0 Flash", "GPT-4o", "Qwen2.5-VL-72B"]
    assert set(paper["source"]) == {SOURCE_PAPER}
    assert list(paper["BLEU"]) == ["1.83", "0.92", "1.08"]
    assert list(paper["Clinical F1"]) == ["19.8", "15.7", "13.6"]
    assert (tmp_path / "table2_captioning.html").read_text().count('class="paper"') == 3
    assert SOURCE_PAPER in (tmp_path / "table2_captioning.md").read_text()

    groups = pd.read_csv(tmp_path / "captioning_by_plane_sequence.csv")
    assert set(groups["grouping"]) == {"plane", "sequence"}
    for _, g in groups.groupby("grouping"):
        assert g["n_cases"].sum() == len(cases)  # every scored case in exactly one group
    assert groups[["clinical_f1", "modality_f1", "meteor"]].to_numpy().max() <= 1.0
    assert _is_png(tmp_path / "figure5_language.png")
    assert _is_png(tmp_path / "captioning_by_plane_sequence.png")


def test_artifacts_survive_a_run_with_no_answers(cases, tmp_path):
    """A run whose every captioning call failed still gets its Table 2, splits and Figure 5,
    written by artifacts() itself, with zeros for this run and the paper's rows intact."""
    ts = sc.score(cases, {}, ScoreContext())
    assert ts.metrics["missing"] == len(cases) and ts.metrics["clinical_f1"] == 0.0
    section = rc.artifacts(ts, cases, tmp_path)
    names = sorted(f.name for f in section.files)
    assert names == sorted(["table2_captioning.csv", "table2_captioning.md",
                            "table2_captioning.html", "captioning_by_plane_sequence.csv",
                            "figure5_language.png", "captioning_by_plane_sequence.png"])
    assert all(f.parent == tmp_path and f.stat().st_size > 0 for f in section.files)
    assert [f.name for f in section.figures] == ["figure5_language.png"]
    assert _is_png(tmp_path / "figure5_language.png")
    assert section.heading == rc.HEADING and "this run" in section.table_html
    t2 = pd.read_csv(tmp_path / "table2_captioning.csv", dtype=str)
    ours, paper = t2.iloc[0], t2.iloc[1:]
    assert ours["model"] == "this run" and ours["source"] == SOURCE_OURS
    assert [ours[c] for c in ("Clinical F1", "Modality F1", "BLEU", "METEOR", "Binary F1")] \
        == ["0.00"] * 5
    assert list(paper["model"]) == ["Gemini 2.0 Flash", "GPT-4o", "Qwen2.5-VL-72B"]
    groups = pd.read_csv(tmp_path / "captioning_by_plane_sequence.csv")
    assert (groups["answered"] == 0).all() and (groups["clinical_f1"] == 0).all()
    with_reference = sum(1 for c in cases if c.caption)
    assert groups.groupby("grouping")["n_cases"].sum().to_dict() == {
        "plane": with_reference, "sequence": with_reference}


def test_evaluate_logs_captioning_metrics_table2_and_figure5(tmp_path, demo_dir, cases):
    from nova_mlflow.cli import main

    lines = [{"filename": c.filename, "task": "captioning", "text": c.caption} for c in cases]
    out = tmp_path / "answers.jsonl"
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--model", "gpt-4o",
                                    "--outputs", str(out), "--json"])
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    for k in INTERFACE:
        assert f"captioning/{k}" in m, k
    assert m["captioning/clinical_f1"] == pytest.approx(1.0)
    assert not any(k.startswith("localization/") for k in m)

    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    arts = {f.path for f in client.list_artifacts(runs[0].info.run_id, "results")}
    for name in ["table2_captioning.csv", "table2_captioning.html", "figure5_language.png",
                 "captioning_by_plane_sequence.csv"]:
        assert f"results/{name}" in arts, arts
    t2 = Path(client.download_artifacts(runs[0].info.run_id, "results/table2_captioning.csv",
                                        str(tmp_path)))
    assert pd.read_csv(t2, dtype=str).iloc[0]["model"] == "gpt-4o"


def test_groups_summed_from_case_counts_equal_text_metrics_on_real_captions(real_metadata):
    """by_group sums each case's counts (keywords, BLEU n-grams, statuses) instead of
    re-reading the captions: on the 906 real NOVA captions, answered with other cases'
    captions, shortened ones, "normal" and empty answers, every group's metrics equal
    text_metrics of the same cases (the corpus definitions of Table 2)."""
    from nova_mlflow.data import load_dataset

    cases = load_dataset(real_metadata, check_images=False).cases
    n = len(cases)
    texts = []
    for i, c in enumerate(cases):
        other = cases[(i * 7 + 3) % n].caption or ""
        texts.append(["", "Normal brain MRI.", other, " ".join(other.split()[:5]),
                      c.caption or "", other + " " + (c.caption or "")][i % 6])
    ts = sc.score(cases, _answers(cases, texts), ScoreContext(model="m"))
    table = ts.table
    groups = rc.by_group(table)
    assert len(groups) >= 8 and groups["n_cases"].sum() == 2 * int(table["has_reference"].sum())
    scored = table[table["has_reference"] == 1]
    checked = 0
    for grouping in ("plane", "sequence"):
        labels = scored[grouping].replace("", rc.NOT_STATED).fillna(rc.NOT_STATED)
        for _, rows in scored.groupby(labels):
            want = sc.text_metrics(list(rows["caption_gt"]), list(rows["caption_pred"].fillna("")),
                                   [float(v) for v in rows["meteor"]])
            got = rc.group_metrics(rows)
            for k, v in got.items():
                assert v == pytest.approx(want[k], abs=1e-12), (grouping, k)
            checked += 1
    assert checked == len(groups)
    whole = rc.group_metrics(scored)
    for k in ("clinical_f1", "modality_f1", "bleu", "binary_accuracy", "binary_f1"):
        assert whole[k] == pytest.approx(ts.metrics[k], abs=1e-12), k
    assert 0 < whole["bleu"] < 1 and 0 < whole["binary_f1"] < 1
