"""`python -m bench gpu --device cpu --tiny` runs every part of the GPU suite and writes its one JSON, so the
suite is known to run when a GPU is lent (the figures themselves are a GPU's to give)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_the_gpu_suite_runs_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, "-m", "bench", "gpu", "--device", "cpu", "--tiny", "--serving-seconds",
                           "2", "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["device"] == "cpu" and r["tiny"] is True
    assert [row["batch"] for row in r["train"]] == [4, 8] and all(row["images_per_s"] > 0 for row in r["train"])
    assert "skipped" in r["ddp"]  # one CPU device
    assert [row["batch"] for row in r["inference"]] == [1, 2, 4]
    assert all(row["fp32"]["images_per_s"] > 0 and row["fp32"]["latency_ms"] > 0 for row in r["inference"])
    b = r["batching"]
    for mode in ("batched", "unbatched"):
        assert b[mode]["requests"] > 0 and b[mode]["errors"] == 0
    assert b["throughput_batched_over_unbatched"] > 0 and b["serve_device"] == "cpu"
    assert r["gradcam"]["median_ms"] > 0
    rec = r["recommended"]
    assert rec["api"]["CXR_SERVE_DEVICE"] == "cpu" and rec["api"]["CXR_BATCH_MAX_SIZE"] in (1, 2, 4)
    assert rec["worker"]["job params"]["batch_size"] in (4, 8)
    assert r["seconds"]["total"] > 0
    assert "batching server:" in done.stdout and "recommended:" in done.stdout
