"""Compare Kermany pneumonia models on validation data none of them trained on (the test split stays unread).

    python -m tools.kermany_val                       # the shipped model against the 128 px recipe's run
    python -m tools.kermany_val --model a.pt --model b.pt

Two validation sets:
- `shared val`: the rows of `recipes/pneumonia-kermany128.toml`'s validation split that the 64 px recipe
  (`recipes/pneumonia-kermany64.toml`) put in its validation or test split, so neither model trained on them;
- `val16`: Kaggle's official 8 + 8 validation images at full resolution (a handful: a sanity check only).

Per model: AUROC (95% bootstrap interval, 1000 resamples, seed 0) and sensitivity / specificity /
accuracy at the model's stored threshold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT
from tools.quality import DEFAULT_SHARED, auroc_with_mean, load_recipe, operating_point, resolve_data_root

NEW_RECIPE = REPO_ROOT / "recipes" / "pneumonia-kermany128.toml"
OLD_RECIPE = REPO_ROOT / "recipes" / "pneumonia-kermany64.toml"


def shared_val(shared: Path):
    from ml.data import create_dataset

    sets = {}
    for key, path in (("new", NEW_RECIPE), ("old", OLD_RECIPE)):
        recipe = load_recipe(path)
        ds = create_dataset(recipe["dataset"], resolve_data_root(recipe["data_root"], shared),
                            **recipe["dataset_options"])
        sets[key] = ds
    old_split = dict(zip(sets["old"].metadata["path"], sets["old"].metadata["split"], strict=True))
    new = sets["new"]
    keep = [i for i, (p, s) in enumerate(zip(new.metadata["path"], new.metadata["split"], strict=True))
            if s == "val" and old_split.get(p) in ("val", "test")]
    return new.subset(keep)


def val16(shared: Path):
    from ml.data import create_dataset

    return create_dataset("folder", shared / "kermany-pediatric-pneumonia" / "val16", split="stratified",
                          fractions={"val": 1.0}, task="binary", positive="PNEUMONIA")


def measure(checkpoint: Path, ds) -> dict:
    import torch

    from ml.data.batches import Batches
    from ml.evaluation.metrics import bootstrap_ci
    from ml.evaluation.predict import predict_batches
    from ml.inference import LoadedModel

    loaded = LoadedModel.from_checkpoint(checkpoint)
    batches = Batches(ds, loaded.preprocess, batch_size=256, shuffle=False, in_memory=True)
    probs, labels, _ = predict_batches(loaded.model, batches, loaded.preprocess, torch.device("cpu"), None, ds.task,
                                       loaded.tta)
    auroc = float(auroc_with_mean(probs, labels)[0])
    lo, hi = bootstrap_ci(probs, labels, auroc_with_mean, n_resamples=1000, seed=0)
    threshold = float(loaded.thresholds[0])
    return {"n": len(ds), "auroc": auroc, "auroc_ci": [float(lo[0]), float(hi[0])], "threshold": threshold,
            **operating_point(probs[:, 0], labels[:, 0], threshold)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kermany_val", description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", type=Path,
                        help="a checkpoint (default: models/pneumonia-kermany/model.pt and runs/pneumonia-kermany128)")
    parser.add_argument("--data", type=Path, default=DEFAULT_SHARED)
    args = parser.parse_args(argv)
    models = args.model or [REPO_ROOT / "models" / "pneumonia-kermany" / "model.pt",
                            REPO_ROOT / "runs" / "pneumonia-kermany128" / "model.pt"]
    sets = {"shared val": shared_val(args.data), "val16": val16(args.data)}
    for name, ds in sets.items():
        positives = int(np.nansum(ds.labels))
        print(f"\n== {name}: n={len(ds)} ({positives} pneumonia, {len(ds) - positives} normal)")
        for checkpoint in models:
            r = measure(checkpoint, ds)
            print(f"   {checkpoint}: AUROC {r['auroc']:.4f} [{r['auroc_ci'][0]:.3f}, {r['auroc_ci'][1]:.3f}]  at "
                  f"{r['threshold']:.3f}: sens {r['sensitivity']:.3f} spec {r['specificity']:.3f} "
                  f"acc {r['accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
