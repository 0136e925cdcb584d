"""The score memo (nova_mlflow/memo.py): METEOR and corpus BLEU values computed once are read
back, exactly, and only for the same words, nltk and WordNet; a broken memo never fails a run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nova_mlflow import wordnet as nwn
from nova_mlflow.memo import FILE, ScoreMemo, memo_key
from nova_mlflow.metrics import captioning as cap
from nova_mlflow.schemas import Answer, Task
from nova_mlflow.scoring import captioning as sc
from nova_mlflow.scoring.common import ScoreContext

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_cases(real_metadata_module):
    from nova_mlflow.data import load_dataset

    return load_dataset(real_metadata_module, check_images=False).cases[:120]


@pytest.fixture(scope="module")
def real_metadata_module():
    from conftest import REAL_CSV

    if not REAL_CSV.exists():
        pytest.skip("needs ../shared/data/nova-metadata")
    return REAL_CSV.parent


def _answers(cases):
    """Other cases' captions, shortened ones and empty answers: METEOR values of all kinds."""
    n = len(cases)
    texts = []
    for i, c in enumerate(cases):
        other = cases[(i * 7 + 3) % n].caption or ""
        texts.append(["", other, " ".join(other.split()[:6]), c.caption or ""][i % 4])
    return {(c.filename, Task.captioning): Answer(filename=c.filename, task=Task.captioning,
                                                 text=t, model="m")
            for c, t in zip(cases, texts)}


class Counting:
    """Counts the WordNet loads and METEOR computations of the scoring code."""

    def __init__(self, monkeypatch):
        self.loads = 0
        self.pairs = 0
        real_read, real_meteor = nwn.read, cap.meteor_scores

        def read(*a, **k):
            self.loads += 1
            return real_read(*a, **k)

        def meteor(refs, hyps, wn):
            self.pairs += len(refs)
            return real_meteor(refs, hyps, wn)

        nwn.cache_clear()
        monkeypatch.setattr(nwn, "read", read)
        monkeypatch.setattr(cap, "meteor_scores", meteor)


def test_memo_round_trip_is_exact_and_batched(tmp_path):
    memo = ScoreMemo(tmp_path / FILE)
    values = {memo_key("s", i): (i * 0.1234567891234567) ** 0.5 for i in range(1_234)}
    memo.put(values)
    got = memo.get(list(values) + [memo_key("s", "absent")])
    assert got == values  # floats back bit for bit; more keys than one SELECT takes
    assert len(memo) == 1_234
    assert memo.prune(0) == 1_234 and len(memo) == 0
    memo.close()


def test_keys_differ_by_scorer_and_by_words():
    assert memo_key("meteor a", ["x"], ["y"]) != memo_key("meteor b", ["x"], ["y"])
    assert memo_key("s", ["x y"], ["z"]) != memo_key("s", ["x", "y"], ["z"])


def test_an_unusable_memo_is_a_warning_and_scoring_goes_on(tmp_path, monkeypatch, caplog,
                                                            real_cases):
    """A damaged scores.sqlite in the cache: scoring (as a run does it, through
    score_answers) warns once and computes every value, equal to scoring without a memo."""
    from nova_mlflow.pipeline.results import Scoring, score_answers

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FILE).write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(cache))
    answers = _answers(real_cases)
    with caplog.at_level(logging.WARNING, logger="nova_mlflow"):
        got = score_answers(Scoring(real_cases, (Task.captioning,), ScoreContext(model="m")),
                            answers)
    assert "not usable" in caplog.text
    plain = sc.score(real_cases, answers, ScoreContext(model="m"))
    assert got.tasks[Task.captioning].metrics == plain.metrics and plain.metrics["meteor"] > 0


def test_through_computes_only_what_is_missing_in_order(tmp_path):
    memo = ScoreMemo(tmp_path / FILE)
    memo.put({"b": 2.0})
    asked = []

    def compute(idx):
        asked.append(idx)
        return [10.0 * i for i in idx]

    assert memo.through(["a", "b", "c"], compute) == [0.0, 2.0, 20.0]
    assert asked == [[0, 2]]
    assert memo.through(["c", "a"], compute) == [20.0, 0.0] and asked == [[0, 2]]
    memo.close()


def test_second_scoring_reads_every_value_back_and_equals_a_fresh_one(tmp_path, monkeypatch,
                                                                      real_cases):
    count = Counting(monkeypatch)
    answers = _answers(real_cases)
    plain = sc.score(real_cases, answers, ScoreContext(model="m"))
    assert count.loads == 1 and count.pairs == len(real_cases)

    memo = ScoreMemo(tmp_path / FILE)
    first = sc.score(real_cases, answers, ScoreContext(model="m", memo=memo))
    assert count.pairs == 2 * len(real_cases)  # an empty memo: every pair computed
    nwn.cache_clear()
    second = sc.score(real_cases, answers, ScoreContext(model="m", memo=memo))
    assert count.pairs == 2 * len(real_cases) and count.loads == 1  # nothing computed, no WordNet
    assert first.metrics == plain.metrics == second.metrics
    assert second.table.equals(plain.table)

    # one answer changed: that pair alone is computed again
    key = next(k for k, a in answers.items() if a.text)
    answers[key] = answers[key].model_copy(update={"text": "A completely new caption."})
    third = sc.score(real_cases, answers, ScoreContext(model="m", memo=memo))
    assert count.pairs == 2 * len(real_cases) + 1
    assert third.metrics["meteor"] == pytest.approx(
        sc.score(real_cases, answers, ScoreContext(model="m")).metrics["meteor"], abs=0)


def test_another_nltk_wordnet_or_metrics_version_misses(tmp_path, monkeypatch, real_cases):
    count = Counting(monkeypatch)
    answers = _answers(real_cases)
    memo = ScoreMemo(tmp_path / FILE)
    sc.score(real_cases, answers, ScoreContext(memo=memo))
    n = count.pairs
    monkeypatch.setattr(sc, "nltk_version", lambda: "0.0-other")
    sc.score(real_cases, answers, ScoreContext(memo=memo))
    assert count.pairs == 2 * n
    monkeypatch.setattr(nwn, "fingerprint", lambda: "another-wordnet")
    sc.score(real_cases, answers, ScoreContext(memo=memo))
    assert count.pairs == 3 * n
    # the package's own metric definitions changed (a METRICS_VERSION bump): no old value
    bleu = []
    monkeypatch.setattr(sc.cap, "corpus_bleu4", lambda r, h: bleu.append(1) or 0.5)
    monkeypatch.setattr(sc, "METRICS_VERSION", sc.METRICS_VERSION + 1)
    sc.score(real_cases, answers, ScoreContext(memo=memo))
    assert count.pairs == 4 * n and bleu == [1]


def test_bundled_fingerprint_is_the_datas_not_the_install_path(tmp_path, monkeypatch):
    from nova_mlflow.wordnet import build

    copy = tmp_path / "elsewhere.txt.gz"
    copy.write_bytes(build.BUNDLED_FILE.read_bytes())
    a = nwn.Source("bundled", build.BUNDLED_FILE).fingerprint()
    assert nwn.Source("bundled", copy).fingerprint() == a
    copy.write_bytes(build.BUNDLED_FILE.read_bytes()[:-1] + b"x")
    assert nwn.Source("bundled", copy).fingerprint() != a


def test_a_warm_memo_spares_a_new_process_nltk_and_wordnet(tmp_path):
    """What a cached re-run gains: in a fresh process with the memo filled, captioning is
    scored without importing nltk (about 1 s) or reading WordNet, and gives the same numbers."""
    from conftest import REAL_CSV

    if not REAL_CSV.exists():
        pytest.skip("needs ../shared/data/nova-metadata")
    script = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from nova_mlflow.data import load_dataset\n"
        "from nova_mlflow.pipeline.results import Scoring, score_answers\n"
        "from nova_mlflow.scoring.common import ScoreContext\n"
        "from nova_mlflow.schemas import Task\n"
        "from test_memo import _answers\n"
        "cases = load_dataset(sys.argv[1], check_images=False).cases[:200]\n"
        "s = score_answers(Scoring(cases, (Task.captioning,), ScoreContext(model='m')),\n"
        "                  _answers(cases))\n"
        "print(json.dumps({'nltk': 'nltk' in sys.modules, 'metrics': s.metrics}))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOVA_MLFLOW_CACHE": str(tmp_path / "c")}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", script, str(REAL_CSV.parent),
                              str(ROOT / "tests")], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs[0]["nltk"] is True and runs[1]["nltk"] is False
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert (tmp_path / "c" / FILE).is_file()


def test_run_without_cache_keeps_no_memo(tmp_path, demo_dir):
    from nova_mlflow.cli import main

    cache = Path(os.environ["NOVA_MLFLOW_CACHE"])
    res = CliRunner().invoke(main, ["run", "--model", "baseline", "--data", str(demo_dir),
                                    "--no-cache", "--no-progress", "--no-traces",
                                    "--tasks", "captioning"])
    assert res.exit_code == 0, res.output
    assert not (cache / FILE).exists()
    res = CliRunner().invoke(main, ["run", "--model", "baseline", "--data", str(demo_dir),
                                    "--no-progress", "--no-traces", "--tasks", "captioning"])
    assert res.exit_code == 0, res.output
    assert len(ScoreMemo(cache / FILE)) > 0
