"""The foundation's benchmark: `cxr train --model simple_cnn --dataset pneumoniamnist` with default
parameters on the full PneumoniaMNIST, timed, with its official-test AUROC.

    python -m bench.train_pneumoniamnist
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO_ROOT, write_result

COMMAND = ["train", "--model", "simple_cnn", "--dataset", "pneumoniamnist", "--data", "data/pneumoniamnist",
           "--quiet", "--no-resume"]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cxr", *COMMAND, "--out", str(out)], cwd=REPO_ROOT, check=True)
        minutes = (time.perf_counter() - started) / 60
        report = json.loads((out / "report.json").read_text())
    test = report["splits"]["test"]
    figures = {"command": "cxr " + " ".join(COMMAND), "wall_minutes": round(minutes, 2),
               "epochs": report["epochs_run"], "best_epoch": report["best_epoch"],
               "test_auroc": test["mean_auroc"], "test_accuracy_at_0.5": test["accuracy_at_0.5"],
               "test_accuracy_at_val_threshold": test["accuracy"], "val_auroc": report["splits"]["val"]["mean_auroc"]}
    path = write_result("train_pneumoniamnist", figures)
    print(f"{figures['command']}\n  wall time {minutes:.1f} min for {figures['epochs']} epochs on CPU"
          f"\n  official test: AUROC {test['mean_auroc']:.4f}, accuracy {test['accuracy_at_0.5']:.4f} at 0.5, "
          f"{test['accuracy']:.4f} at the val-chosen threshold\n  raw: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
