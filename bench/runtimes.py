"""Benchmark 5, the runtime choice: eager, channels-last, ONNX Runtime, torch.compile and dynamic int8 at batch
1 for each model, each checked against eager (1e-4 on probabilities; int8 instead by AUROC on the
PneumoniaMNIST test split holding to 3 decimals, which only the shipped 28 px model can be checked on), and
the one `ml.runtime.choose_runtime` picks with its speed-up over eager.

    python -m bench runtimes [--quick]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.common import REPO_ROOT
from bench.models import BenchModel
from ml.data import create_dataset
from ml.evaluation.metrics import per_class_auroc
from ml.runtime import Runtime, choose_runtime, example_inputs

PNEUMONIAMNIST = REPO_ROOT / "data" / "pneumoniamnist"


def auroc_check(entry: BenchModel) -> Callable[[Runtime], tuple[bool, str]] | None:
    """For a model trained on PneumoniaMNIST: does a runtime keep the test split's AUROC to 3 decimals?"""
    if entry.loaded.labels != ["Pneumonia"] or entry.loaded.data_config.input_size != 28:
        return None
    test = create_dataset("pneumoniamnist", PNEUMONIAMNIST).split("test")
    batch = entry.loaded.preprocess.batch([test[i][0] for i in range(len(test))])
    labels = test.labels

    def auroc(run: Callable[[torch.Tensor], torch.Tensor]) -> float:
        with torch.inference_mode():
            probs = entry.to_probabilities(run(batch)).numpy()
        return float(np.nanmean(per_class_auroc(probs, labels)))

    reference = auroc(entry.loaded.model)

    def check(runtime: Runtime) -> tuple[bool, str]:
        value = auroc(runtime)
        ok = round(value, 3) == round(reference, 3)
        return ok, f"test AUROC {value:.4f} vs eager {reference:.4f}" + ("" if ok else " (3rd decimal differs)")

    return check


def run(models: list[BenchModel], *, quick: bool = False) -> dict[str, Any]:
    candidates = ("channels_last", "onnxruntime", "int8_dynamic") + (() if quick else ("compile",))
    rows = []
    for entry in models:
        cfg = entry.loaded.data_config
        check = auroc_check(entry)
        choice = choose_runtime(
            entry.loaded.model, example_inputs((cfg.in_chans, cfg.input_size, cfg.input_size)),
            entry.to_probabilities, candidates=candidates, repeats=10 if quick else 30,
            accuracy_check=check or (lambda _: (False, "no labelled test data for this model's weights")),
        )
        eager = next(t for t in choice.trials if t.name == "eager")
        chosen = next(t for t in choice.trials if t.name == choice.name)
        rows.append({"model": entry.label, "chosen": choice.name, "trials": [t.__dict__ for t in choice.trials],
                     "speedup": (eager.median_ms or 0) / (chosen.median_ms or 1)})
    return {"candidates": list(candidates), "models": rows}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'model':<28}{'runtime':<15}{'ms (b=1)':>9}{'max diff':>10}{'build s':>9}  note")
    for r in result["models"]:
        for t in r["trials"]:
            ms = f"{t['median_ms']:.2f}" if t["median_ms"] else "-"
            diff = f"{t['max_abs_diff']:.1e}" if t["max_abs_diff"] is not None else "-"
            build = f"{t['build_s']:.1f}" if t["build_s"] is not None else "-"
            note = ("chosen" if t["name"] == r["chosen"] else "") + (f" {t['reason']}" if t["reason"] else "")
            print(f"{r['model']:<28}{t['name']:<15}{ms:>9}{diff:>10}{build:>9}  {note.strip()}")
        print(f"{'':<28}chosen {r['chosen']}: {r['speedup']:.2f}x eager")
