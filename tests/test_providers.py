"""Real SDKs (openai, google-genai) against the local fake server: faults, cache, resume, keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.testing.fake_server import FakeModelServer, FaultPlan

from conftest import run_store

KEY = "sk-test-NOVA-7f3a9c1e5b"  # a fake key the scan below must never find


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A response cache of this test's own (the demo set is read from the session cache)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(d))
    return d


def _server(monkeypatch, plan: FaultPlan = FaultPlan(), **kw) -> FakeModelServer:
    srv = FakeModelServer(plan, api_key=KEY, **kw).start()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", srv.url)
    return srv


def _canned(route: str, model: str, prompt: str, image: bytes | None) -> str:
    from nova_mlflow.testing.fake_server import guess_task

    return {"localization": "[[100, 100, 150, 150]]", "diagnosis": "1. Glioblastoma",
            "captioning": "Axial FLAIR image shows a lesion."}.get(guess_task(prompt), "no")


def _run(*args: str) -> tuple[int, dict, str]:
    res = CliRunner().invoke(main, ["run", "--no-progress", "--retry-base", "0.01", "--json", *args])
    return res.exit_code, (json.loads(res.stdout) if res.stdout.strip() else {}), res.stderr


@pytest.mark.parametrize("model", ["gpt-4o", "gemini-2.0-flash"])
def test_every_case_answered_through_429s_and_500s(tmp_path, demo_dir, own_cache, monkeypatch, model):
    srv = _server(monkeypatch, FaultPlan(rate_429=0.2, rate_500=0.05, seed=3))
    try:
        code, m, err = _run("--data", str(demo_dir), "--model", model)
    finally:
        srv.stop()
    assert code == 0, err
    n = m["localization/n_cases"]
    for task in ("localization", "captioning", "diagnosis"):
        assert m[f"{task}/answered"] == n and m[f"{task}/api_errors"] == 0
    assert srv.count(429) > 0 and srv.count(500) > 0  # the faults really happened
    assert m["run/retries"] >= srv.count(429) + srv.count(500)
    assert max(srv.answered().values()) == 1  # no request answered twice
    assert m["localization/mAP30"] > 0.3  # boxes came back in the model's frame and were read
    assert m["localization/input_tokens"] > 0 and m["localization/cost_usd"] > 0
    _, run = _only_run(tmp_path)
    assert run.data.params["provider"] == ("openai" if model == "gpt-4o" else "gemini")
    assert run.data.params["frame"] == ("pixel_xyxy" if model == "gpt-4o" else "gemini_yxyx_1000")


def _only_run(tmp_path, status=None):
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return client, runs[0] if len(runs) == 1 else runs


def test_second_identical_run_makes_zero_requests(tmp_path, demo_dir, own_cache, monkeypatch):
    srv = _server(monkeypatch)
    try:
        code1, m1, err = _run("--data", str(demo_dir), "--model", "gpt-4o", "--limit", "8")
        assert code1 == 0, err
        before = srv.count()
        code2, m2, _ = _run("--data", str(demo_dir), "--model", "gpt-4o", "--limit", "8")
        assert code2 == 0 and srv.count() == before
        assert m2["run/requests"] == 0 and m2["run/cache_hits"] == 24
        assert m2["localization/cost_usd"] == 0 and m2["localization/cost_usd_uncached"] > 0
        assert {k: v for k, v in m1.items() if "/" in k and not k.startswith("run/")
                and "cost_usd" not in k and "latency" not in k and "cached" not in k
                and "retries" not in k} == \
            {k: v for k, v in m2.items() if "/" in k and not k.startswith("run/")
             and "cost_usd" not in k and "latency" not in k and "cached" not in k
             and "retries" not in k}
        code3, m3, _ = _run("--data", str(demo_dir), "--model", "gpt-4o", "--limit", "8", "--refresh")
        assert code3 == 0 and srv.count() == before + 24  # --refresh asks again
        _run("--data", str(demo_dir), "--model", "gpt-4o", "--limit", "8", "--no-cache")
        assert srv.count() == before + 48
    finally:
        srv.stop()


def test_killed_run_resumes_without_asking_twice(tmp_path, demo_dir, own_cache, monkeypatch):
    srv = _server(monkeypatch, FaultPlan(latency_s=0.05))
    env = dict(os.environ)
    args = [sys.executable, "-m", "nova_mlflow", "run", "--data", str(demo_dir), "--model",
            "gemini-2.0-flash", "--concurrency", "2", "--no-progress", "--json"]
    try:
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 120
        while srv.count(200) < 30 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9, mid-run
        proc.wait()
        time.sleep(0.5)  # let handlers that were mid-answer finish logging
        first = srv.count(200)
        assert 0 < first < 144
        done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        m = json.loads(done.stdout)
    finally:
        srv.stop()
    answered = srv.answered()
    assert len(answered) == 144 and m["localization/answered"] == 48
    # An answer the client received is never asked for again. Only calls in flight at the
    # kill (the server had answered, the killed client never read it) can repeat: at most
    # `concurrency` (here 2) of them.
    repeated = [h for h, n in answered.items() if n > 1]
    assert max(answered.values()) <= 2 and len(repeated) <= 2
    assert m["run/cache_hits"] >= first - 2
    # the killed run was closed as FAILED (with the reason) when the next run started
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    killed = [r for r in runs if r.info.status == "FAILED"][0]
    assert "ended without closing the run" in killed.data.tags["nova.failed_reason"]


def test_timeouts_truncated_bodies_and_resets_are_retried(tmp_path, demo_dir, own_cache, monkeypatch):
    plan = FaultPlan(rate_slow=0.1, slow_s=4.0, rate_truncated=0.1, rate_reset=0.1, seed=5)
    # canned answers: only the injected slow answers may pass the timeout, even on a busy machine
    srv = _server(monkeypatch, plan, script=_canned)
    try:
        code, m, err = _run("--data", str(demo_dir), "--model", "gpt-4o", "--limit", "12",
                            "--timeout", "1.5")
    finally:
        srv.stop()
    assert code == 0, err
    assert {"slow", "truncated", "reset"} <= set(srv.drawn)  # every kind was served
    assert {"truncated", "reset"} <= {r.fault for r in srv.log}
    assert all(m[f"{t}/answered"] == 12 for t in ("localization", "captioning", "diagnosis"))


def test_server_gone_exit_3_and_answers_kept(tmp_path, demo_dir, own_cache, monkeypatch):
    srv = _server(monkeypatch)
    srv.stop()  # nobody is listening any more
    code, m, err = _run("--data", str(demo_dir), "--model", "gpt-4o", "--limit", "3",
                        "--max-retries", "1", "--tasks", "diagnosis")
    assert code == 3
    assert "failed after retries" in err
    client, run = _only_run(tmp_path)
    assert run.info.status == "FAILED"
    kept = own_cache / "runs" / run.info.run_id / "answers.jsonl"
    rows = [json.loads(l) for l in kept.read_text().splitlines()]
    assert len(rows) == 3 and {r["status"] for r in rows} == {"api_error"}
    assert m == {}  # no metrics JSON on failure


def test_missing_key_fails_before_any_work(tmp_path, demo_dir, own_cache, monkeypatch):
    srv = _server(monkeypatch)
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    try:
        res = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--model", "gemini-2.0-flash"])
    finally:
        srv.stop()
    assert res.exit_code == 2
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in res.stderr
    assert srv.count() == 0 and not (tmp_path / "mlflow.db").exists()


def test_openai_compatible_qwen_frame(tmp_path, demo_dir, own_cache, monkeypatch):
    srv = _server(monkeypatch)
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)  # its own key, never OPENAI_API_KEY
    try:
        code, m, err = _run("--data", str(demo_dir), "--model", "openai-compatible:qwen2.5-vl-72b",
                            "--base-url", srv.openai_base_url, "--tasks", "localization",
                            "--limit", "10")
    finally:
        srv.stop()
    assert code == 0, err
    # the fake answers in Qwen2.5-VL's 476-px frame; read back correctly they score like pixels
    assert m["localization/mAP30"] > 0.3
    assert "localization/cost_usd" not in m  # a locally served model has no known price
    _, run = _only_run(tmp_path)
    assert run.data.params["frame"] == "qwen25_resized_xyxy"
    assert run.data.params["base_url"] == srv.openai_base_url


def test_replay_provider_reproduces_a_run(tmp_path, demo_dir, own_cache, monkeypatch):
    code, m1, err = _run("--data", str(demo_dir), "--limit", "10", "--tasks", "localization,diagnosis")
    assert code == 0, err
    client, run = _only_run(tmp_path)
    answers = client.download_artifacts(run.info.run_id, "answers/answers.jsonl", str(tmp_path))
    code, m2, err = _run("--data", str(demo_dir), "--limit", "10", "--tasks", "localization,diagnosis",
                         "--model", f"replay:{answers}", "--frame", "pixel_xyxy")
    assert code == 0, err
    for k in ("localization/mAP30", "localization/coco_mAP50", "diagnosis/top5"):
        assert m2[k] == m1[k]


def test_no_key_in_store_artifacts_cache_or_logs(tmp_path, demo_dir, own_cache, monkeypatch):
    srv = _server(monkeypatch, FaultPlan(rate_429=0.2, seed=2))
    try:
        res = CliRunner().invoke(main, ["-v", "run", "--data", str(demo_dir), "--model", "gpt-4o",
                                        "--limit", "6", "--retry-base", "0.01"])
        assert res.exit_code == 0, res.stderr
        monkeypatch.setenv("OPENAI_API_KEY", KEY + "-wrong")  # a 401 whose error is stored
        res2 = CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--model", "gpt-4o",
                                         "--limit", "2", "--no-cache", "--tasks", "diagnosis"])
        assert res2.exit_code == 3
    finally:
        srv.stop()
    needles = [KEY.encode(), KEY[3:].encode()]
    scanned = 0
    for root in (tmp_path, own_cache):
        for f in root.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                scanned += 1
                assert not any(n in data for n in needles), f
    assert scanned > 5
    for text in (res.stdout, res.stderr, res2.stdout, res2.stderr):
        assert KEY not in text


FAULTS = {  # fault -> (plan, exception type, retryable, status, Retry-After)
    "429": (FaultPlan(rate_429=1, retry_after="7"), "RateLimitError", True, 429, 7.0),
    "500": (FaultPlan(rate_500=1), "InternalServerError", True, 500, None),
    "timeout": (FaultPlan(rate_slow=1, slow_s=2.0), "APITimeoutError", True, None, None),
    "truncated": (FaultPlan(rate_truncated=1), "JSONDecodeError", True, None, None),
    "reset": (FaultPlan(rate_reset=1), "APIConnectionError", True, None, None),
    "gone": (None, "APIConnectionError", True, None, None),
    "bad key": ("bad key", "AuthenticationError", False, 401, None),
}


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_sdk_errors_classified_the_same_on_both_transports(monkeypatch, transport):
    """The openai provider's transports (aiohttp by default, the SDK's httpx2 with
    NOVA_OPENAI_TRANSPORT=httpx) raise the same SDK errors, which the runner classifies alike;
    one provider serves several event loops (the runner's, then the judge's)."""
    import asyncio

    from nova_mlflow.providers.base import Request, classify
    from nova_mlflow.providers.openai_chat import OpenAIChatProvider
    from nova_mlflow.schemas import Task

    monkeypatch.setenv("NOVA_OPENAI_TRANSPORT", transport)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    req = Request(task=Task.captioning, filename="a.png", case_id="a", prompt="Describe.",
                  prompt_version="v1")

    async def three(p: OpenAIChatProvider) -> list:
        return await asyncio.wait_for(asyncio.gather(*(p.generate(req) for _ in range(3))), 30)

    with FakeModelServer(api_key=KEY, script=_canned) as srv:
        p = OpenAIChatProvider("gpt-4o", base_url=srv.openai_base_url, timeout=5.0)
        assert p.transport == transport
        for _ in range(2):  # two loops in turn, as asyncio.run twice
            got = asyncio.run(three(p))
            assert [r.text for r in got] == ["Axial FLAIR image shows a lesion."] * 3
    for fault, (plan, name, retryable, status, after) in FAULTS.items():
        srv = FakeModelServer(plan if isinstance(plan, FaultPlan) else FaultPlan(),
                              api_key="sk-other" if plan == "bad key" else KEY).start()
        if plan is None:
            srv.stop()  # nobody listening
        p = OpenAIChatProvider("gpt-4o", base_url=srv.openai_base_url, timeout=1.0)
        try:
            with pytest.raises(Exception) as info:
                asyncio.run(three(p))
        finally:
            srv.stop()
        assert type(info.value).__name__ == name, (fault, info.value)
        e = classify(info.value)
        assert (e.retryable, e.status, e.retry_after) == (retryable, status, after), fault


def test_retry_policy_and_rate_limiter():
    import asyncio
    import random

    from nova_mlflow.calls.runner import RateLimiter
    from nova_mlflow.config import RetryPolicy

    p = RetryPolicy(base_delay=1.0, max_delay=30.0)
    rng = random.Random(0)
    assert all(0 <= p.delay(3, None, rng) <= 8 for _ in range(50))
    assert p.delay(0, 5.0, rng) >= 5.0  # Retry-After is honoured
    assert p.delay(10, None, rng) <= 30.0

    async def starts(n: int, rpm: float) -> list[float]:
        lim, out = RateLimiter(rpm), []
        for _ in range(n):
            await lim.wait()
            out.append(time.monotonic())
        return out

    t = asyncio.run(starts(4, 600))  # one per 0.1 s
    assert t[-1] - t[0] >= 0.29


def test_redact():
    from nova_mlflow.secrets import redact, safe_url

    os.environ["GEMINI_API_KEY"] = "AIzaSyA-1234567890abcdefghijkl"
    try:
        assert "1234567890" not in redact("bad key AIzaSyA-1234567890abcdefghijkl given")
        assert "sk-proj" not in redact("Incorrect API key provided: sk-proj-ab***yz12")
    finally:
        del os.environ["GEMINI_API_KEY"]
    assert safe_url("https://user:pw@example.org:8443/v1?key=x") == "https://example.org:8443/v1"


@pytest.mark.live
@pytest.mark.parametrize("model,var", [("gpt-4o", "OPENAI_API_KEY"), ("gemini-2.0-flash", "GEMINI_API_KEY")])
def test_live_api_smoke(tmp_path, demo_dir, own_cache, model, var):
    if not os.environ.get(var):
        pytest.skip(f"{var} is not set")
    code, m, err = _run("--data", str(demo_dir), "--model", model, "--limit", "2")
    assert code == 0, err
    assert m["diagnosis/answered"] == 2


def test_fake_server_is_quiet_when_a_client_hangs_up(capfd):
    """A client that resets its connection before the answer (a timed-out call) leaves no
    traceback in the test output; the server goes on answering others."""
    import socket
    import struct

    from nova_mlflow.testing.fake_server import FakeModelServer, FaultPlan

    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
               f"application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
    with FakeModelServer(plan=FaultPlan(latency_s=0.2)) as srv:
        for _ in range(3):
            sock = socket.create_connection((srv.host, srv.port))
            sock.sendall(request)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset: the answer, written after the latency, meets a dead peer
        deadline = time.time() + 5
        while srv.count() < 3 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the writes (and any traceback) happen after the log entry
        with socket.create_connection((srv.host, srv.port)) as sock:
            sock.sendall(request)
            assert sock.recv(64).startswith(b"HTTP/1.")  # still answering
    assert srv.count() == 4
    err = capfd.readouterr().err
    assert "Exception occurred during processing" not in err and "Traceback" not in err
