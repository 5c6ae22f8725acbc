"""`cxr data prepare`: builds the prepared cache with progress, and says so when it is already there."""

from __future__ import annotations

import json

from cxr.cli import main


def test_prepare_builds_each_split_then_finds_it(data_dir, tmp_path, capsys):
    args = ["data", "prepare", "--dataset", "nih", "--data", str(data_dir / "nih-sample"), "--size", "32",
            "--dataset-option", "split=patient", "--cache", str(tmp_path), "--workers", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["test", "train", "val"]
    assert all("written in" in line for line in lines)
    assert "img" in captured.err  # the progress bar
    folders = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    counts = [json.loads((f / "index.json").read_text())["n"] for f in folders]
    assert len(folders) == 3 and sum(counts) == 48  # every image of the sample, once
    assert main(args) == 0
    assert all("already there" in line for line in capsys.readouterr().out.splitlines())


def test_prepare_names_a_bad_dataset_root(tmp_path, capsys):
    code = main(["data", "prepare", "--dataset", "nih", "--data", str(tmp_path / "nowhere"), "--size", "32",
                 "--cache", str(tmp_path)])
    assert code == 2 and "not found" in capsys.readouterr().err
