"""The registered pyfunc reads images only under the roots it was loaded with.

A served model reads `image_path` on its caller's behalf and sends the bytes to the model
vendor; a path outside the dataset's directory (or the configured `image_roots`) is refused
in its row and nothing reaches the vendor.
"""

from __future__ import annotations

import base64

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import good_row, png_bytes, run_store, write_dataset

from nova_mlflow.cli import main
from nova_mlflow.testing.fake_server import FakeModelServer

KEY = "sk-test-pyfunc-2b7d"
MODEL = "nova-images"


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A gpt-4o configuration run on a small dataset, gated, loaded from the registry."""
    import mlflow

    data = write_dataset(tmp_path / "nova", [good_row(1), good_row(2)])
    with FakeModelServer(api_key=KEY) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        res = CliRunner().invoke(main, ["run", "--data", str(data), "--model", "gpt-4o",
                                        "--tasks", "localization", "--no-progress",
                                        "--no-traces", "--experiment", "img"])
        assert res.exit_code == 0, res.stderr
        client = run_store(tmp_path)
        (run,) = client.search_runs([client.get_experiment_by_name("img").experiment_id])
        res = CliRunner().invoke(main, ["gate", "--run", run.info.run_id,
                                        "--registered-model", MODEL])
        assert res.exit_code == 0, res.stderr
        yield srv, data, mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")


def _ask(model, image_path: str) -> dict:
    out = model.predict(pd.DataFrame([{"task": "localization", "filename": "x.png",
                                       "image_path": image_path}]))
    return out.to_dict("records")[0]


def _outside(tmp_path) -> str:
    private = tmp_path / "private"
    private.mkdir(exist_ok=True)
    secret = private / "patient-scan.png"
    secret.write_bytes(png_bytes(value=200))
    return str(secret)


def test_image_outside_the_dataset_is_refused_and_never_sent(tmp_path, served):
    srv, data, model = served
    before = srv.count()
    secret = _outside(tmp_path)
    for path in (secret, "../private/patient-scan.png", "/etc/hostname"):
        row = _ask(model, path)
        assert row["text"] is None and "outside the image roots" in row["error"], row
        assert str(data) in row["error"]  # names the root it may read
    link = data / "images" / "innocent.png"  # a link inside the root pointing out of it
    link.symlink_to(secret)
    row = _ask(model, str(link))
    assert row["text"] is None and "outside the image roots" in row["error"]
    assert srv.count() == before  # nothing reached the vendor


def test_images_under_the_roots_are_read(tmp_path, served):
    srv, data, model = served
    before = srv.count()
    for path in (str(data / "images" / "case0001_001.png"), "images/case0002_001.png"):
        row = _ask(model, path)
        assert row["error"] is None and row["text"], row
    assert srv.count() == before + 2
    row = _ask(model, "images/missing.png")
    assert "no such file" in row["error"] and srv.count() == before + 2
    png = base64.b64encode(png_bytes()).decode()  # bytes sent by the caller: no file is read
    out = model.predict(pd.DataFrame([{"task": "localization", "filename": "y.png",
                                       "image_png": png}]))
    assert out["error"].isna().all() and srv.count() == before + 3


def test_roots_given_at_load_time(tmp_path, served):
    import mlflow

    _, data, _ = served
    secret = _outside(tmp_path)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion",
                                     model_config={"image_roots": [str(tmp_path / "private")]})
    assert _ask(model, secret)["error"] is None  # allowed now ...
    row = _ask(model, str(data / "images" / "case0001_001.png"))
    assert "outside the image roots" in row["error"]  # ... and the dataset no longer is


def test_a_runs_images_directory_is_a_root_of_its_model(tmp_path, monkeypatch):
    """A run whose images came from `--images DIR` (not beside its metadata) records DIR as a
    param, and the gated model may read image_path under it as under the dataset's own."""
    import mlflow

    data = write_dataset(tmp_path / "meta", [good_row(1)])
    scans = tmp_path / "scans"
    (data / "images").rename(scans)
    with FakeModelServer(api_key=KEY) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        res = CliRunner().invoke(main, ["run", "--data", str(data), "--images", str(scans),
                                        "--model", "gpt-4o", "--tasks", "localization",
                                        "--no-progress", "--no-traces", "--experiment", "ext"])
        assert res.exit_code == 0, res.stderr
        client = run_store(tmp_path)
        (run,) = client.search_runs([client.get_experiment_by_name("ext").experiment_id])
        assert run.data.params["images"] == str(scans.resolve())
        res = CliRunner().invoke(main, ["gate", "--run", run.info.run_id,
                                        "--registered-model", "nova-ext"])
        assert res.exit_code == 0, res.stderr
        model = mlflow.pyfunc.load_model("models:/nova-ext@champion")
        before = srv.count()
        row = _ask(model, str(scans / "case0001_001.png"))
        assert row["error"] is None and row["text"] and srv.count() == before + 1
        assert "outside the image roots" in _ask(model, _outside(tmp_path))["error"]
        assert srv.count() == before + 1
