"""`cxr publish`, `cxr models` and `cxr predict --model`: a `cxr train` run folder into a registry on disk, then
predictions by reference over folders and globs as CSV and JSON lines."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from cxr.cli import main
from registry.db import Database
from registry.migrate import upgrade
from registry.versions import list_versions


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data",
                 str(data_dir / "pneumoniamnist"), "--epochs", "1", "--out", str(out), "--quiet",
                 "--set", "max_train_samples=128", "--set", "max_eval_samples=64"]) == 0
    return out


@pytest.fixture(scope="module")
def registry_args(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("registry")
    url = f"sqlite:///{root / 'registry.db'}"
    upgrade(url)
    return ["--url", url, "--artifact-root", str(root / "artifacts")]


@pytest.fixture(scope="module")
def published(run_dir, registry_args) -> str:
    assert main(["publish", str(run_dir), "--name", "chest", "--alias", "production", *registry_args]) == 0
    return "chest"


def _versions(registry_args):
    db = Database(registry_args[1])
    try:
        with db.session() as s:
            return list_versions(s)
    finally:
        db.dispose()


def test_publish_registers_the_run_once_and_models_lists_it(published, run_dir, registry_args, capsys):
    capsys.readouterr()
    [version] = _versions(registry_args)
    assert (version.ref, version.aliases, version.architecture) == ("chest:1", ("production",), "simple_cnn")
    assert version.metrics["test"]["n"] == 64  # the run's evaluation travels with its checkpoint
    assert main(["publish", str(run_dir), "--name", "chest", *registry_args]) == 0
    assert "already published as chest:1" in capsys.readouterr().out
    assert len(_versions(registry_args)) == 1
    assert main(["models", *registry_args]) == 0
    captured = capsys.readouterr()
    assert "chest:1" in captured.out and "@production" in captured.out and "simple_cnn" in captured.out
    assert "cxr architectures" in captured.err


def test_publish_refuses_what_is_not_a_model(tmp_path, registry_args, capsys):
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    assert main(["publish", str(tmp_path), "--name", "broken", *registry_args]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err
    assert main(["publish", str(tmp_path / "nowhere"), "--name", "broken", *registry_args]) == 2
    assert main(["publish", str(tmp_path), "--name", "bad name!", *registry_args]) == 2
    assert "broken" not in {v.name for v in _versions(registry_args)}


def test_predict_by_reference_over_a_folder_as_csv(published, run_dir, registry_args, data_dir, capsys):
    samples = data_dir / "samples"
    capsys.readouterr()
    assert main(["predict", str(samples), "--model", "chest@production", "--format", "csv", *registry_args]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [Path(r["file"]).name for r in rows] == sorted(p.name for p in samples.iterdir())
    assert all(r["model"] == "chest:1" and r["Pneumonia:decision"] in ("positive", "negative") for r in rows)
    # the same numbers as the checkpoint file gives
    assert main(["predict", str(samples), "--checkpoint", str(run_dir / "model.pt"), "--format", "csv"]) == 0
    direct = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["Pneumonia"] for r in rows] == [r["Pneumonia"] for r in direct]


def test_predict_a_glob_as_json_lines_with_a_bad_file(published, registry_args, data_dir, tmp_path, capsys):
    for sample in (data_dir / "samples").glob("*.jpeg"):
        shutil.copy(sample, tmp_path / sample.name)
    (tmp_path / "broken.jpeg").write_bytes(b"\xff\xd8\xff nothing more")
    capsys.readouterr()
    code = main(["predict", str(tmp_path / "*.jpeg"), "--model", "chest:1", "--format", "jsonl", *registry_args])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 1 and "1 of 3 image(s) could not be read" in captured.err
    assert [Path(r["file"]).name for r in lines] == sorted(p.name for p in tmp_path.glob("*.jpeg"))
    broken = next(r for r in lines if r["file"].endswith("broken.jpeg"))
    assert "error" in broken and "probabilities" not in broken
    good = [r for r in lines if "error" not in r]
    assert len(good) == 2
    for r in good:
        [finding] = r["findings"]
        assert finding["label"] == "Pneumonia" and finding["decision"] == (
            "positive" if finding["probability"] >= finding["threshold"] else "negative")


@pytest.mark.parametrize(("ref", "message"), [("chest14", "no model named 'chest14'"),
                                               ("chest@staging", "chest@staging"),
                                               ("chest:@", "not a model reference")])
def test_predict_names_a_missing_model(published, registry_args, data_dir, ref, message, capsys):
    sample = str(data_dir / "samples" / "nih_cxr_1024.png")
    assert main(["predict", sample, "--model", ref, *registry_args]) == 2
    err = capsys.readouterr().err
    assert message in err and "\n" not in err.strip()
