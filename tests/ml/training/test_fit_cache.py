"""`fit` reads each split from the prepared cache when given one: written by the first run, reused by the next."""

from __future__ import annotations

import json

from ml.config import TrainConfig
from ml.training.loop import fit


def test_fit_writes_the_prepared_cache_once_and_reuses_it(data_dir, tmp_path):
    config = TrainConfig.parse({"model": "simple_cnn", "dataset": "pneumoniamnist",
                                "data_root": str(data_dir / "pneumoniamnist"),
                                "params": {"epochs": 1, "batch_size": 32, "max_train_samples": 256,
                                           "max_eval_samples": 200, "lr": 2e-3}})
    cache = tmp_path / "prepared"
    first = fit(config, tmp_path / "a", cache_dir=cache)
    folders = sorted(p for p in cache.iterdir() if not p.name.startswith("."))
    assert [f.name.rsplit("-", 1)[0] for f in folders] == ["pneumoniamnist-test", "pneumoniamnist-train",
                                                            "pneumoniamnist-val"]
    index = json.loads((folders[1] / "index.json").read_text())
    assert index["n"] == 256 and index["preprocessing"]["input_size"] == 28
    written = {f: (f / "images.npy").stat().st_mtime_ns for f in folders}
    second = fit(config, tmp_path / "b", cache_dir=cache)
    assert {f: (f / "images.npy").stat().st_mtime_ns for f in folders} == written  # reused, not rewritten
    assert second.report["splits"]["test"]["mean_auroc"] == first.report["splits"]["test"]["mean_auroc"]
    assert first.report["splits"]["test"]["mean_auroc"] > 0.6  # one short epoch: above chance (uncached: 0.654)
