"""Which key goes where: the Authorization header a real SDK sends to the fake server.

`openai` sends OPENAI_API_KEY (to OPENAI_BASE_URL or the vendor, as the SDK does);
`openai-compatible` talks to whatever --base-url names, so it sends OPENAI_COMPATIBLE_API_KEY
(or the variable --api-key-env names), no key at all when that is unset, and never
OPENAI_API_KEY or the OpenAI account headers.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main
from nova_mlflow.testing.fake_server import FakeModelServer

OPENAI_KEY = "sk-test-vendor-account-5d1e"
COMPAT_KEY = "sk-test-local-vllm-9b2c"
QWEN = "openai-compatible:qwen2.5-vl-72b"


@pytest.fixture
def server(monkeypatch):
    """A fake server that accepts any key (or none) and records what it was sent."""
    for var in ("OPENAI_BASE_URL", "OPENAI_COMPATIBLE_API_KEY", "GEMINI_API_KEY",
                "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-test-account")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-test-account")
    with FakeModelServer() as srv:
        yield srv


def _run(demo_dir, model: str, *extra: str):
    return CliRunner().invoke(main, ["run", "--data", str(demo_dir), "--model", model,
                                     "--tasks", "diagnosis", "--limit", "2", "--no-progress",
                                     "--no-traces", "--retry-base", "0.01", *extra])


def _sent(srv: FakeModelServer) -> set:
    assert srv.log, "the server got no request"
    return {r.auth for r in srv.log}


def _no_file_holds(root, secret: str) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_openai_compatible_sends_no_key_when_none_is_set(tmp_path, demo_dir, server):
    res = _run(demo_dir, QWEN, "--base-url", server.openai_base_url)
    assert res.exit_code == 0, res.stderr
    assert _sent(server) == {None}  # no Authorization header: not OPENAI_API_KEY, not "EMPTY"
    for r in server.log:  # nor the OpenAI account's organization and project
        assert "openai-organization" not in r.headers and "openai-project" not in r.headers


def test_openai_compatible_sends_its_own_key(tmp_path, demo_dir, server, monkeypatch):
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", COMPAT_KEY)
    res = _run(demo_dir, QWEN, "--base-url", server.openai_base_url)
    assert res.exit_code == 0, res.stderr
    assert _sent(server) == {f"Bearer {COMPAT_KEY}"}
    _no_file_holds(tmp_path, COMPAT_KEY)


def test_api_key_env_names_the_variable(tmp_path, demo_dir, server, monkeypatch):
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", COMPAT_KEY)
    monkeypatch.setenv("MY_VLLM_KEY", "sk-test-named-variable-77aa")
    res = _run(demo_dir, QWEN, "--base-url", server.openai_base_url, "--api-key-env",
               "MY_VLLM_KEY", "--json")
    assert res.exit_code == 0, res.stderr
    assert _sent(server) == {"Bearer sk-test-named-variable-77aa"}
    _no_file_holds(tmp_path, "sk-test-named-variable-77aa")
    from conftest import run_store

    client = run_store(tmp_path)
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.data.params["api_key_env"] == "MY_VLLM_KEY"  # the name, never the value


@pytest.mark.parametrize("flags,expect", [
    (["--api-key-env", "MY_UNSET_KEY"], "MY_UNSET_KEY"),  # asked for by name: required
    (["--api-key-env", "OPENAI_API_KEY"], "never gets a vendor's key"),
    (["--api-key-env", "GEMINI_API_KEY"], "never gets a vendor's key"),
    (["--api-key-env", "not a name"], "not an environment variable name"),
])
def test_bad_api_key_env_exits_2_before_any_call(tmp_path, demo_dir, server, flags, expect):
    res = _run(demo_dir, QWEN, "--base-url", server.openai_base_url, *flags)
    assert res.exit_code == 2, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("nova-mlflow: error:")]
    assert expect in line
    assert server.log == [] and not (tmp_path / "mlflow.db").exists()


def test_api_key_env_on_a_provider_without_keys_exits_2(tmp_path, demo_dir):
    res = _run(demo_dir, "baseline", "--api-key-env", "ANY_KEY")
    assert res.exit_code == 2 and "takes no API key" in res.stderr


def test_openai_keeps_openai_api_key_and_base_url(tmp_path, demo_dir, server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)  # as the SDK reads it
    res = _run(demo_dir, "gpt-4o")
    assert res.exit_code == 0, res.stderr
    assert _sent(server) == {f"Bearer {OPENAI_KEY}"}
    assert {r.headers.get("openai-organization") for r in server.log} == {"org-test-account"}


def test_gemini_reads_the_variable_named_by_api_key_env(tmp_path, demo_dir, server, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-default-variable-0000000")
    monkeypatch.setenv("TEAM_GEMINI_KEY", "AIza-test-team-variable-1111111111")
    res = _run(demo_dir, "gemini-2.0-flash", "--base-url", server.url, "--api-key-env",
               "TEAM_GEMINI_KEY", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["diagnosis/answered"] == 2
    assert _sent(server) == {"AIza-test-team-variable-1111111111"}
