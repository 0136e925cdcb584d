"""Golden test: what a demo run and an `evaluate` of real-layout answers log, pinned.

Why: the package is moved and split (the "one-way house"); behaviour must not change. This
test records what a user sees from the two main commands (every metric, every per-case table,
the artifact list and the text files under results/) and compares a fresh run with the
recording. A deliberate change of behaviour updates the recording on purpose:

    NOVA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py -n 0

and the diff of tests/golden/ shows what changed in review.

Left out because they vary from run to run: latency metrics, run ids, timestamps, PNG bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main

from conftest import REAL_CSV, run_store

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NOVA_UPDATE_GOLDEN") == "1"
VOLATILE_METRICS = ("latency_p50_s", "latency_p95_s")
HASHED_SUFFIXES = (".csv", ".md", ".json")


def _artifacts(client, run_id: str, path: str = "") -> list[str]:
    out: list[str] = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return sorted(out)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _snapshot(tmp_path: Path, metrics: dict) -> dict:
    """Everything pinned about the only run of the test's store."""
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    run_id = run.info.run_id
    files = _artifacts(client, run_id)
    dst = tmp_path / "downloaded"
    local = Path(client.download_artifacts(run_id, "", str(dst)))
    tables = {}
    for f in files:
        if f.startswith("tables/"):
            tables[f] = json.loads((local / f).read_text(encoding="utf-8"))
    hashed = {f: _sha((local / f).read_bytes()) for f in files
              if f.startswith("results/") and f.endswith(HASHED_SUFFIXES)}
    return {
        "metrics": {k: v for k, v in sorted(metrics.items()) if not k.endswith(VOLATILE_METRICS)},
        "logged_metrics": sorted(k for k in run.data.metrics if not k.endswith(VOLATILE_METRICS)),
        "params": sorted(run.data.params),
        "artifacts": files,
        "results_sha256": hashed,
        "tables": tables,
    }


def _compare(name: str, snap: dict) -> None:
    path = GOLDEN / f"{name}.json.gz"
    text = json.dumps(snap, indent=1, sort_keys=True, ensure_ascii=False)
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(text.encode("utf-8"))
        pytest.skip(f"golden file {path.name} written")
    want = json.loads(gzip.decompress(path.read_bytes()))
    got = json.loads(text)
    for key in ("metrics", "logged_metrics", "params", "artifacts", "results_sha256"):
        assert got[key] == want[key], f"{name}: {key} differs from the golden recording"
    assert sorted(got["tables"]) == sorted(want["tables"])
    for table, content in want["tables"].items():
        g = got["tables"][table]
        assert g["columns"] == content["columns"], f"{name}: {table} columns differ"
        for i, (row_g, row_w) in enumerate(zip(g["data"], content["data"])):
            assert row_g == row_w, f"{name}: {table} row {i} differs:\n{row_g}\n{row_w}"
        assert len(g["data"]) == len(content["data"]), f"{name}: {table} row count differs"


@pytest.mark.slow
def test_demo_run_is_unchanged(tmp_path, demo_dir):
    res = CliRunner().invoke(main, ["run", "--json", "--no-progress"])
    assert res.exit_code == 0, res.stderr
    _compare("demo_run", _snapshot(tmp_path, json.loads(res.stdout)))


def _gemini_box(box: dict, rng: random.Random) -> list[int]:
    """A gold box (x, y, width, height in pixels of 480 x 480) moved a little, written as
    Gemini's box_2d: [ymin, xmin, ymax, xmax] on 0-1000."""
    x1 = box["x"] + rng.uniform(-15, 15)
    y1 = box["y"] + rng.uniform(-15, 15)
    x2 = x1 + box["w"] * rng.uniform(0.7, 1.3)
    y2 = y1 + box["h"] * rng.uniform(0.7, 1.3)
    return [round(v / 480 * 1000) for v in (y1, x1, y2, x2)]


def real_outputs(path: Path) -> Path:
    """Answers to all 906 real NOVA slices in the three tasks, made from the metadata
    with a fixed seed: moved gold boxes (Gemini frame), other cases' captions, ranked
    diagnoses from the differential lists; with empty, unreadable and missing answers."""
    import ast

    import pandas as pd

    rng = random.Random(20261203)
    df = pd.read_csv(REAL_CSV).sort_values("filename").reset_index(drop=True)
    lines = []
    for i, row in df.iterrows():
        name = row["filename"]
        gold = ast.literal_eval(row["bbox_gold"])
        boxes = [{"x": x, "y": y, "w": w, "h": h} for x, y, w, h in
                 zip(gold["x"], gold["y"], gold["width"], gold["height"])]
        r = rng.random()
        if r < 0.05:
            loc = ""
        elif r < 0.08:
            loc = "I cannot see a lesion box here, sorry."
        elif r < 0.6:
            loc = json.dumps([{"box_2d": _gemini_box(b, rng), "label": "lesion"} for b in boxes])
        else:
            loc = json.dumps([{"box_2d": [rng.randint(0, 500), rng.randint(0, 500),
                                          rng.randint(500, 1000), rng.randint(500, 1000)]}])
        if rng.random() > 0.03:
            lines.append({"filename": name, "task": "localization", "text": loc})
        other = df["caption"].iat[(i + 7) % len(df)]
        cap = row["caption"] if rng.random() < 0.3 else other
        cap = "" if not isinstance(cap, str) else " ".join(
            w for w in cap.split() if rng.random() > 0.2)
        lines.append({"filename": name, "task": "captioning", "text": cap})
        diffs = [d.strip() for d in str(row["differential_diagnosis"]).split(";") if d.strip()]
        rng.shuffle(diffs)
        truth = row["final_diagnosis"] if rng.random() < 0.4 else None
        ranked = ([truth] if truth else []) + diffs
        dx = "\n".join(f"{j}. {d}" for j, d in enumerate(ranked[:5], start=1))
        if rng.random() > 0.04:
            lines.append({"filename": name, "task": "diagnosis", "text": dx})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.mark.slow
def test_evaluate_on_real_metadata_is_unchanged(tmp_path, real_metadata, placeholder_images):
    outputs = real_outputs(tmp_path / "answers.jsonl")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(real_metadata), "--images",
                                    str(placeholder_images), "--outputs", str(outputs),
                                    "--model", "gemini-2.0-flash", "--json"])
    assert res.exit_code == 0, res.stderr
    _compare("evaluate_real", _snapshot(tmp_path, json.loads(res.stdout)))
