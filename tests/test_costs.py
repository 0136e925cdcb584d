"""Costs: known prices give cost metrics; an unknown price gives none (absent, never 0.0),
a warning naming the model and --prices, and "cost unknown" in the summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_store

from nova_mlflow.cli import main
from nova_mlflow.pricing import (
    DEFAULT_PRICES,
    PRICES_AS_OF,
    PRICES_SOURCES,
    PriceTable,
    cost_usd,
    load_prices,
    price_for,
)
from nova_mlflow.testing.fake_server import FakeModelServer

KEY = "sk-test-costs-71c0"
ROOT = Path(__file__).resolve().parents[1]
TASKS = ("localization", "diagnosis")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    monkeypatch.delenv("NOVA_MLFLOW_PRICES", raising=False)
    with FakeModelServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        yield srv


def _run(demo_dir, model: str, *extra: str):
    res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--model", model,
                                    "--tasks", ",".join(TASKS), "--limit", "3", "--json",
                                    "--no-progress", "--no-traces", *extra])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout), res.stderr


def _logged(tmp_path) -> dict:
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return max(runs, key=lambda r: r.info.start_time).data.metrics


@pytest.mark.parametrize("model", ["openai-compatible:qwen2.5-vl-72b",  # served locally
                                   "openai-compatible:gpt-4o",  # a vendor's name, not its price
                                   "gpt-5-preview"])  # a vendor model newer than the table
def test_unknown_price_logs_no_cost_warns_and_says_so(tmp_path, demo_dir, server, model):
    frame = [] if model.startswith("openai-compatible:qwen") else ["--frame", "pixel_xyxy"]
    m, err = _run(demo_dir, model, *frame)
    logged = _logged(tmp_path)
    for task in TASKS:
        assert m[f"{task}/input_tokens"] > 0  # tokens were counted ...
        for key in ("cost_usd", "cost_usd_uncached"):  # ... but no cost is made up
            assert f"{task}/{key}" not in m and f"{task}/{key}" not in logged
    (warning,) = [line for line in err.splitlines() if "no price known" in line]
    assert model in warning and "--prices" in warning
    assert re.search(r"\|\s*cost_usd\s*\|\s*cost unknown\s*\|", err), err[-2000:]


@pytest.mark.parametrize("entry", ["openai-compatible:qwen2.5-vl-72b", "qwen2.5-vl"])
def test_a_local_model_is_priced_by_prices(tmp_path, demo_dir, server, entry):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({entry: {"input": 0.5, "output": 2.0}}))
    m, err = _run(demo_dir, "openai-compatible:qwen2.5-vl-72b", "--prices", str(prices))
    assert "no price known" not in err
    for task in TASKS:
        tin, tout = m[f"{task}/input_tokens"], m[f"{task}/output_tokens"]
        assert m[f"{task}/cost_usd"] == pytest.approx((tin * 0.5 + tout * 2.0) / 1e6)
        assert m[f"{task}/cost_usd_uncached"] == m[f"{task}/cost_usd"]
    assert _logged(tmp_path)["diagnosis/cost_usd"] == m["diagnosis/cost_usd"]
    assert re.search(r"\|\s*cost_usd\s*\|\s*\$0\.0\d+\s*\|", err)


def test_known_price_is_list_price_times_tokens(tmp_path, demo_dir, server):
    m, err = _run(demo_dir, "gpt-4o")
    assert "no price known" not in err
    tin, tout = m["diagnosis/input_tokens"], m["diagnosis/output_tokens"]
    assert m["diagnosis/cost_usd"] == pytest.approx((tin * 2.50 + tout * 10.00) / 1e6)


def test_judge_with_unknown_price(tmp_path, demo_dir, server):
    from nova_mlflow.data import load_dataset

    cases = load_dataset(demo_dir).limited(4).cases
    outputs = tmp_path / "answers.jsonl"
    outputs.write_text("".join(json.dumps({"filename": c.filename, "task": "diagnosis",
                                           "text": "1. Some rare entity"}) + "\n" for c in cases))
    res = CliRunner().invoke(main, ["evaluate", "--data", str(demo_dir), "--outputs",
                                    str(outputs), "--judge", "gpt-5-preview", "--json",
                                    "--no-traces"])
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["diagnosis/judge_calls"] > 0 and "diagnosis/judge_cost_usd" not in m
    assert "no price known for judge gpt-5-preview" in res.stderr
    assert re.search(r"\|\s*judge_cost_usd\s*\|\s*cost unknown\s*\|", res.stderr)


def test_price_rules():
    table = load_prices()
    assert price_for("gpt-4o-mini-2024-07-18", table) == DEFAULT_PRICES["gpt-4o-mini"]  # longest
    assert price_for("openai:gpt-4o", table) == DEFAULT_PRICES["gpt-4o"]
    assert price_for("gemini-2.0-flash-001", table) == DEFAULT_PRICES["gemini-2.0-flash"]
    assert price_for("openai-compatible:gpt-4o", table) is None  # built-ins never apply
    assert price_for("replay:answers.jsonl", table) is None
    assert price_for("claude-3-opus", table) is None
    assert cost_usd("claude-3-opus", 1000, 1000, table) is None
    assert cost_usd("baseline", 10**6, 10**6, table) == 0.0  # runs here, free
    assert cost_usd("gpt-4o", 10**6, 10**6, table) == pytest.approx(12.50)
    custom = PriceTable({**DEFAULT_PRICES, "qwen": {"input": 1.0, "output": 1.0}},
                        frozenset({"qwen"}), "custom", "x.json")
    assert cost_usd("openai-compatible:qwen2.5-vl-72b", 10**6, 0, custom) == 1.0


@pytest.mark.parametrize("content,expect", [
    ("not json", "cannot read price table"),
    ('{"gpt-4o": {"input": 1}}', "field 'gpt-4o'"),
    ('{"gpt-4o": {"input": "cheap", "output": 1}}', "must be numbers"),
    ('[1, 2]', "expected"),
])
def test_bad_price_file_exits_2(tmp_path, demo_dir, content, expect):
    prices = tmp_path / "p.json"
    prices.write_text(content)
    res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--prices", str(prices),
                                    "--limit", "1", "--no-progress"])
    assert res.exit_code == 2 and "p.json" in res.stderr and expect in res.stderr


def test_price_table_has_date_and_source_and_readme_lists_it():
    assert re.fullmatch(r"\d{4}-\d{2}", PRICES_AS_OF)
    assert all(url.startswith("https://") for url in PRICES_SOURCES.values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Price table", 1)[1].split("\n#", 1)[0]
    assert PRICES_AS_OF in section and all(url in section for url in PRICES_SOURCES.values())
    listed = {m: {"input": float(i), "output": float(o)} for m, i, o in
              re.findall(r"^\| `([^`]+)` \| ([\d.]+) \| ([\d.]+) \|", section, re.MULTILINE)}
    assert listed == DEFAULT_PRICES
