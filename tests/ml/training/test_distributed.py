"""Data-parallel training on the CPU: two gloo processes started by `launch`, on real shipped data.

Tolerance: with a model without BatchNorm or dropout (vit_tiny: LayerNorm) the two-process run at the same
global batch equals the one-process run up to float summation order (measured: losses within 1e-8, the same
AUROC); we allow 1e-5 on losses and 1e-6 on AUROC. Models with BatchNorm differ on the CPU, where each rank
normalises its half batch (SyncBatchNorm needs GPUs: on CUDA the launcher converts to it).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from ml.config import TrainConfig
from ml.errors import ConfigError, TrainingCancelled
from ml.training.distributed import launch
from ml.training.loop import fit
from ml.training.reporter import Reporter


def _config(data_dir: Path, **params: Any) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 32, "max_train_samples": 128, "max_eval_samples": 100, "lr": 2e-3,
            "augment": {"enabled": False}, "scheduler": "none", "device": "cpu"}
    return TrainConfig.parse({"model": params.pop("model", "simple_cnn"), "dataset": "pneumoniamnist",
                              "data_root": str(data_dir / "pneumoniamnist"), "params": {**base, **params}})


class _Recorder(Reporter):
    def __init__(self) -> None:
        self.starts: list[int] = []
        self.checkpoints: list[tuple[str, int]] = []
        self.epochs: list[int] = []

    def on_start(self, *, start_epoch: int, **_: Any) -> None:
        self.starts.append(start_epoch)

    def on_checkpoint(self, *, path: Path, kind: str, epoch: int, **_: Any) -> None:
        assert path.is_file()
        self.checkpoints.append((kind, epoch))

    def on_epoch_end(self, *, epoch: int, **_: Any) -> None:
        self.epochs.append(epoch)


def test_two_processes_match_one_at_the_same_global_batch(data_dir, tmp_path):
    one = fit(_config(data_dir, model="vit_tiny"), tmp_path / "one")
    recorder = _Recorder()
    two = launch(_config(data_dir, model="vit_tiny", devices=2), tmp_path / "two", recorder)
    assert len(one.history) == len(two.history) == 2
    for a, b in zip(one.history, two.history, strict=True):
        assert b["train"]["loss"] == pytest.approx(a["train"]["loss"], abs=1e-5)
        assert b["val"]["loss"] == pytest.approx(a["val"]["loss"], abs=1e-5)
        assert b["val"]["mean_auroc"] == pytest.approx(a["val"]["mean_auroc"], abs=1e-6)
    assert two.report["splits"]["test"]["mean_auroc"] == pytest.approx(one.report["splits"]["test"]["mean_auroc"],
                                                                       abs=1e-6)
    # rank 0 alone wrote the run folder and reported: one line per epoch and split, each event once
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert [(json.loads(ln)["epoch"], json.loads(ln)["split"]) for ln in lines] == [
        (1, "train"), (1, "val"), (2, "train"), (2, "val")]
    assert recorder.starts == [0] and recorder.epochs == [1, 2]
    assert ("last", 2) in recorder.checkpoints and (tmp_path / "two" / "model.pt").is_file()
    assert json.loads((tmp_path / "two" / "config.json").read_text())["devices"] == 2


@pytest.fixture
def faulty_rank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Ranks started through `faulty_rank.py` (a fault at a known point inside a rank); returns a function
    that sets the fault."""
    wrapper = tmp_path / "faulty-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).with_name("faulty_rank.py")}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))

    def set_fault(**fault: Any) -> None:
        monkeypatch.setenv("CXR_TEST_FAULT", json.dumps(fault))

    return set_fault


def test_a_killed_rank_makes_the_run_resume_from_the_last_checkpoint(data_dir, tmp_path, faulty_rank, caplog):
    run, mark = tmp_path / "run", tmp_path / "killed"
    faulty_rank(rank=1, epoch=2, action="kill", mark=str(mark))  # SIGKILL when epoch 2 begins, once
    recorder = _Recorder()
    with caplog.at_level(logging.WARNING):
        result = launch(_config(data_dir, epochs=3, devices=2), run, recorder, timeout_s=60)
    killed = int(mark.read_text())
    assert "rank 1 was killed by SIGKILL" in caplog.text
    # the ranks started again from the checkpoint of epoch 1 and finished
    assert recorder.starts == [0, 1]
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert json.loads((run / ".ddp" / "ranks.json").read_text())["1"] != killed
    assert result.model_path.is_file() and result.report["splits"]["test"]["n"] == 100


def test_without_restarts_a_killed_rank_fails_the_run(data_dir, tmp_path, faulty_rank):
    run = tmp_path / "run"
    faulty_rank(rank=1, epoch=2, action="kill", mark=str(tmp_path / "killed"))
    with pytest.raises(Exception, match="rank 1 was killed by SIGKILL"):
        launch(_config(data_dir, epochs=3, devices=2), run, _Recorder(), timeout_s=60, restarts=0)
    assert not (run / "model.pt").exists()


class _Stop(_Recorder):
    def should_stop(self) -> bool:
        return bool(self.epochs)  # after the first epoch


def test_a_stop_reaches_every_rank(data_dir, tmp_path, faulty_rank):
    # rank 0 waits at the start of epoch 2 until the launcher has turned the stop into its file
    faulty_rank(rank=0, epoch=2, action="wait_for_stop")
    with pytest.raises(TrainingCancelled):
        launch(_config(data_dir, epochs=5, devices=2), tmp_path / "run", _Stop())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 1]  # epoch 1 ran; epoch 2 stopped at its first step


def test_the_global_batch_must_split_evenly(data_dir, tmp_path):
    with pytest.raises(ConfigError, match="multiple of devices"):
        launch(_config(data_dir, batch_size=33, devices=2), tmp_path / "run")
