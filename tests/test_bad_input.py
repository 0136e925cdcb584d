"""Each class of bad input: one line naming file, row and field; exit code 2; no run left."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from nova_mlflow.cli import main

from conftest import good_row, png_bytes, run_store, write_dataset


def _validate(path) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["validate", "--data", str(path)])
    return res.exit_code, res.stderr.strip()


def _assert_one_line(err: str, *parts: str) -> None:
    assert err.count("\n") == 0, err
    assert err.startswith("nova-mlflow: error: ")
    for p in parts:
        assert p in err, (p, err)


@pytest.mark.parametrize("field,value,expect", [
    ("bbox_gold", "{'x': [1.0], 'y': [2.0], 'width': [3.0]", "malformed box string"),
    ("bbox_gold", "[1, 2, 3, 4]", "expected a dict"),
    ("bbox_gold", "{'x': [1.0], 'y': [2.0], 'width': [3.0]}", "missing key"),
    ("bbox_gold", "{'x': [1.0, 2.0], 'y': [2.0], 'width': [3.0], 'height': [4.0]}", "different lengths"),
    ("bbox_gold", "{'x': [10.0], 'y': [20.0], 'width': [-5.0], 'height': [4.0]}", "negative size"),
    ("bbox_gold", "{'x': [10.0], 'y': [20.0], 'width': [nan], 'height': [4.0]}", "NaN"),
    ("bbox_gold", "{'x': ['a'], 'y': [20.0], 'width': [5.0], 'height': [4.0]}", "not a number"),
    ("bbox_gold", "__import__('os').system('true')", "malformed box string"),
    ("bbox_raters", "{'x': [1.0], 'y': [2.0], 'width': [3.0], 'height': [4.0]}", "missing key"),
    ("scan_id", "one", "not an integer"),
    ("final_diagnosis", "", "empty"),
])
def test_malformed_fields(tmp_path, field, value, expect):
    rows = [good_row(1), good_row(2), good_row(3, **{field: value})]
    code, err = _validate(write_dataset(tmp_path / "d", rows))
    assert code == 2
    _assert_one_line(err, "nova_metadata.csv", "row 3", f"field '{field}'", expect)


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "sub/x.png", "..\\x.png", ".."])
def test_filename_with_path_component(tmp_path, name):
    rows = [good_row(1), good_row(2, filename=name)]
    code, err = _validate(write_dataset(tmp_path / "d", rows))
    assert code == 2
    _assert_one_line(err, "row 2", "field 'filename'")


def test_duplicate_filenames(tmp_path):
    rows = [good_row(1), good_row(2), good_row(1, case_id="case0009")]
    code, err = _validate(write_dataset(tmp_path / "d", rows))
    assert code == 2
    _assert_one_line(err, "row 3", "field 'filename'", "duplicate", "first at row 1")


def test_missing_image(tmp_path):
    root = write_dataset(tmp_path / "d", [good_row(1), good_row(2)])
    (root / "images" / "case0002_001.png").unlink()
    code, err = _validate(root)
    assert code == 2
    _assert_one_line(err, "row 2", "field 'filename'", "not found", "case0002_001.png")


@pytest.mark.parametrize("content,expect", [
    (b"this is not a png at all", "not a readable PNG"),
    (png_bytes()[:60], "unreadable PNG"),  # valid header, truncated data
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x00\x00\x00\x00", "100000x100000"),
])
def test_unreadable_png(tmp_path, content, expect):
    root = write_dataset(tmp_path / "d", [good_row(1), good_row(2)])
    (root / "images" / "case0002_001.png").write_bytes(content)
    code, err = _validate(root)
    assert code == 2
    _assert_one_line(err, "row 2", "field 'filename'", expect)


def test_empty_file_wrong_columns_and_bad_encoding(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "meta.csv").write_bytes(b"")
    code, err = _validate(d / "meta.csv")
    assert code == 2
    _assert_one_line(err, "meta.csv", "empty")

    (d / "meta.csv").write_text("name,label\nx.png,y\n")
    code, err = _validate(d / "meta.csv")
    assert code == 2
    _assert_one_line(err, "meta.csv", "missing column(s)", "filename")

    (d / "meta.csv").write_bytes("filename,caption\n".encode() + b"case\xff\xfe.png,x\n")
    code, err = _validate(d / "meta.csv")
    assert code == 2
    _assert_one_line(err, "meta.csv", "not UTF-8", "line 2")


def test_directory_without_metadata(tmp_path):
    (tmp_path / "empty").mkdir()
    code, err = _validate(tmp_path / "empty")
    assert code == 2
    _assert_one_line(err, "no NOVA metadata found")


def test_bad_data_leaves_no_run(tmp_path):
    rows = [good_row(1), good_row(2, bbox_gold="{'x': [1.0]")]
    root = write_dataset(tmp_path / "d", rows)
    res = CliRunner().invoke(main, ["run", "--data", str(root), "--no-progress"])
    assert res.exit_code == 2
    client = run_store(tmp_path)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert runs == []


def test_subprocess_exit_code_and_single_stderr_line(tmp_path):
    rows = [good_row(1, bbox_gold="{'x': [1.0], 'y': [2.0], 'width': [-3.0], 'height': [4.0]}")]
    root = write_dataset(tmp_path / "d", rows)
    proc = subprocess.run([sys.executable, "-m", "nova_mlflow", "validate", "--data", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    _assert_one_line(proc.stderr.strip(), "row 1", "field 'bbox_gold'", "negative size")


def test_bad_flags_exit_2(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--tasks", "segmentation"]).exit_code == 2
    assert runner.invoke(main, ["run", "--prompt", "diagnosis"]).exit_code == 2
    res = runner.invoke(main, ["run", "--prompt", "diagnosis=v99", "--no-progress"])
    assert res.exit_code == 2 and "no prompt version 'v99'" in res.stderr
    res = runner.invoke(main, ["run", "--model", "mystery-model", "--no-progress"])
    assert res.exit_code == 2 and "--frame" in res.stderr


def test_tracking_server_refusing_us_is_one_line(tmp_path, demo_dir, monkeypatch):
    """A URI whose server rejects the MLflow API (like 401 without credentials): exit 2, one line."""
    from nova_mlflow.testing.fake_server import FakeModelServer

    srv = FakeModelServer().start()  # answers 404 to every MLflow route
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        res = CliRunner().invoke(main, ["run", "--limit", "1", "--tasks", "diagnosis", "--no-progress"])
    finally:
        srv.stop()
    assert res.exit_code == 2
    lines = [l for l in res.stderr.splitlines() if l.startswith("nova-mlflow: error:")]
    assert len(lines) == 1 and "MLFLOW_TRACKING_URI" in lines[0]
    assert "Traceback" not in res.stderr


def test_images_are_decoded_once_per_machine_and_a_changed_one_again(tmp_path, monkeypatch):
    """A PNG that decoded is remembered by its sha256 and not decoded by the next load; a
    file whose bytes changed (a truncated copy) is decoded again and still fails."""
    from nova_mlflow.data import images, load_dataset

    monkeypatch.setenv("NOVA_MLFLOW_CACHE", str(tmp_path / "cache"))
    decoded = []
    real = images._decode_check
    monkeypatch.setattr(images, "_decode_check",
                        lambda data, path: (decoded.append(path.name), real(data, path)))
    rows = [good_row(1), good_row(2), good_row(3, caption="Another caption.")]
    root = write_dataset(tmp_path / "d", rows)
    (root / "images" / "case0003_001.png").write_bytes(png_bytes(value=7))
    first = load_dataset(root)
    assert {"case0001_001.png", "case0003_001.png"} <= set(decoded)
    decoded.clear()
    assert load_dataset(root).digest == first.digest and decoded == []
    (root / "images" / "case0002_001.png").write_bytes(png_bytes()[:60])
    code, err = _validate(root)
    assert code == 2
    _assert_one_line(err, "row 2", "field 'filename'", "unreadable PNG")
