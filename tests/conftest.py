"""Shared fixtures: a private cache and MLflow store per test, the demo set built once.

Every test runs in its own temporary directory with MLFLOW_TRACKING_URI pointing at a fresh
sqlite file there and NOVA_MLFLOW_CACHE at a cache of its own (response cache, verdicts,
run directories), so no result depends on test order or on the xdist worker; it fails if it
leaves an MLflow run open. The demo set is built once per session in a directory of its own
and linked into each test's cache, where `--data demo` finds it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

SHARED_METADATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nova-metadata"
REAL_CSV = SHARED_METADATA / "NOVA_metadata.csv"


def pytest_addoption(parser):
    parser.addoption("--live", action="store_true", help="run tests that call real provider APIs")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--live"):
        return
    skip = pytest.mark.skip(reason="live API test: pass --live and set the key to run it")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


def skip_unless_required(env_var: str, why: str) -> None:
    """Skip a test whose system software is absent, naming what to install; fail instead when
    `env_var` is set to 1 (.ci/run sets it after installing that software), so CI can never
    skip such a test silently."""
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{env_var}=1 but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """Read-only files shared by the session's tests (the demo set); never a test's cache."""
    return tmp_path_factory.mktemp("nova_shared")


@pytest.fixture(scope="session")
def demo_dir(session_cache) -> Path:
    """The demo set, built once per session (tests read it, none writes into it)."""
    from nova_mlflow.data.demo import demo_root

    return demo_root(session_cache)


def _link_demo(cache: Path, shared: Path) -> None:
    """Make the session's demo set the test cache's own `demo` (a symlink, nothing copied)."""
    from nova_mlflow.data.demo import DEMO_VERSION, is_complete

    if is_complete(shared / DEMO_VERSION):
        (cache / DEMO_VERSION).symlink_to(shared / DEMO_VERSION, target_is_directory=True)


@pytest.fixture(autouse=True)
def isolated(request, tmp_path, monkeypatch, session_cache):
    """Own cwd, own sqlite store, own cache (demo set linked in); no run may stay open."""
    if "demo_dir" in request.fixturenames:
        request.getfixturevalue("demo_dir")  # built before the link is made
    cache = tmp_path / "nova_cache"
    cache.mkdir()
    _link_demo(cache, session_cache)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(cache))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        mlflow.end_run()
        pytest.fail(f"test left MLflow run {active.info.run_id} open")


@pytest.fixture
def real_metadata() -> Path:
    if not REAL_CSV.exists():
        pytest.skip(f"real NOVA metadata not found at {REAL_CSV} (../shared is absent)")
    return SHARED_METADATA


def png_bytes(width: int = 480, height: int = 480, value: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height), color=value).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def placeholder_images(tmp_path, real_metadata) -> Path:
    """A black 480 x 480 PNG for every filename of the real metadata."""
    import pandas as pd

    names = pd.read_csv(REAL_CSV, usecols=["filename"])["filename"]
    d = tmp_path / "placeholder_images"
    d.mkdir()
    data = png_bytes()
    for n in names:
        (d / n).write_bytes(data)
    return d


def run_store(tmp_path: Path):
    """An MlflowClient on the test's own store."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


CSV_COLUMNS = ["filename", "caption", "case_id", "scan_id", "title", "publication_date",
               "clinical_history", "differential_diagnosis", "final_diagnosis", "link",
               "bbox_gold", "bbox_raters"]


def good_row(i: int = 1, **overrides) -> dict:
    row = {
        "filename": f"case{i:04d}_001.png",
        "caption": "Axial FLAIR image shows a hyperintense lesion in the right frontal lobe.",
        "case_id": f"case{i:04d}",
        "scan_id": "1",
        "title": "A test case",
        "publication_date": "01.01.2024",
        "clinical_history": "A 45-year-old woman with headache.",
        "differential_diagnosis": "Glioblastoma; Metastases",
        "final_diagnosis": "Glioblastoma",
        "link": "https://example.org/case",
        "bbox_gold": "{'x': [100.0], 'y': [120.0], 'width': [50.0], 'height': [40.0]}",
        "bbox_raters": "{'rater': ['Dr.A'], 'x': [98.0], 'y': [118.0], 'width': [52.0], 'height': [44.0]}",
    }
    row.update(overrides)
    return row


def write_dataset(root: Path, rows: list[dict], *, images: bool = True) -> Path:
    """A NOVA-layout directory: metadata CSV + images/ with a valid PNG per row."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(root / "nova_metadata.csv", index=False)
    if images:
        (root / "images").mkdir(exist_ok=True)
        for r in rows:
            name = str(r["filename"])
            if "/" not in name and "\\" not in name and name not in ("", ".", ".."):
                (root / "images" / name).write_bytes(png_bytes())
    return root
