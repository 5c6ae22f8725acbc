"""Model quality: evaluate each shipped model on its test split, print the figures, write its model card.

    python -m tools.quality                          # every model in models/manifest.toml that has a recipe
    python -m tools.quality --model cxr3class        # one model
    python -m tools.quality --model pneumonia --retrain --ship   # train from the recipe (fixed seed), ship it
    python -m tools.quality --data /elsewhere/shared/data         # where the large sources live
    python -m tools.quality --recipe recipes/all-cxr-merged.toml --run runs/all-cxr --val-only   # a candidate

Figures per model: per-class AUROC with a 95% percentile-bootstrap interval (1000 resamples of the test
rows, seed 0), accuracy, macro/micro F1 and precision/recall at the operating thresholds stored in the
checkpoint (chosen on the validation split while training; arg-max for multi-class models).

`--retrain` runs `fit` on the model's recipe (the same as `cxr train --config RECIPE`), timed on this
machine (for a manifest entry with `ensemble_members`, once per member, then `cxr ensemble` and `cxr calibrate`); `--ship` copies the produced `model.pt` to `models/<name>/`, writes `models/<name>/metrics.json`
(the figures and the training wall time) and regenerates `models/<name>/CARD.md`. Without `--retrain`,
`--ship` regenerates the card of the weights already shipped, keeping the recorded training time.

Recipes name their data relative to the repository root; paths under `../shared/data/` are re-rooted
onto `--data` (default: `../shared/data` beside the repository).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import tomllib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, machine, write_result
from tools.cards import ensemble_members, member_run_name, render_card

MANIFEST = REPO_ROOT / "models" / "manifest.toml"
SHARED_PREFIX = "../shared/data"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
N_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
MIN_POSITIVES = 5  # fewer test positives than this: the AUROC is reported but flagged unreliable

log = logging.getLogger(__name__)


# --- what ships ----------------------------------------------------------------------------------


def shipped_models(manifest: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    """Manifest entries that name a recipe, by model name."""
    entries = tomllib.loads(manifest.read_text()).get("model", [])
    return {e["name"]: e for e in entries if e.get("recipe")}


def load_recipe(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def resolve_data_root(recipe_root: str, shared: Path, override: str | None = None) -> Path:
    """The recipe's data path, re-rooted onto `shared` when it points into ../shared/data."""
    if override:
        return Path(override)
    if recipe_root == SHARED_PREFIX or recipe_root.startswith(SHARED_PREFIX + "/"):
        return shared / recipe_root[len(SHARED_PREFIX):].lstrip("/")
    path = Path(recipe_root)
    return path if path.is_absolute() else REPO_ROOT / path


# --- figures -------------------------------------------------------------------------------------


def predict_split(checkpoint: Path, recipe: dict[str, Any], data_root: Path, split: str) -> dict[str, Any]:
    """Probabilities, labels, thresholds and the dataset facts of `split`."""
    import torch

    from ml.data import create_dataset
    from ml.data.batches import Batches
    from ml.errors import DatasetError
    from ml.evaluation.predict import predict_batches
    from ml.inference import LoadedModel

    loaded = LoadedModel.from_checkpoint(checkpoint)
    ds = create_dataset(recipe["dataset"], data_root, **recipe.get("dataset_options", {}))
    if ds.pathologies != loaded.labels:
        raise DatasetError(f"{checkpoint} predicts {loaded.labels}; the recipe's data has {ds.pathologies}")
    rows = ds.split(split)
    batches = Batches(rows, loaded.preprocess, batch_size=256, shuffle=False, in_memory=True)
    tta = loaded.tta
    probs, labels, _ = predict_batches(loaded.model, batches, loaded.preprocess, torch.device("cpu"), None, ds.task,
                                       tta=tta)
    source = rows.metadata["source"].to_numpy() if "source" in rows.metadata else None
    path = rows.metadata["path"].to_numpy() if "path" in rows.metadata else None  # file-backed datasets
    return {"probs": probs, "labels": labels, "thresholds": loaded.thresholds, "task": ds.task,
            "pathologies": ds.pathologies, "split_sizes": {s: len(ds.split(s)) for s in ds.splits()},
            "meta": loaded.meta, "data_config": loaded.data_config.model_dump(mode="json"), "tta": tta,
            "source": source, "path": path}


def test_source(recipe: dict[str, Any], data_root: Path, shared: Path) -> tuple[dict[str, Any], Path, str]:
    """The recipe and data root that hold the model's test split, and what to call that test set.

    A recipe's `[quality]` table may name another dataset for the test (Kermany's official test split for a
    model trained on Kermany's training images): `test_dataset`, `test_data_root`, `test_dataset_options`.
    """
    q = recipe.get("quality", {})
    if "test_dataset" not in q:
        return recipe, data_root, q.get("test_set", f"{recipe['dataset']}: the test split of {recipe['data_root']}")
    test_recipe = {"dataset": q["test_dataset"], "dataset_options": q.get("test_dataset_options", {})}
    name = q.get("test_set", f"{q['test_dataset']}: {q['test_data_root']}")
    return test_recipe, resolve_data_root(q["test_data_root"], shared), name


def auroc_with_mean(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class AUROC followed by their mean (the statistic the bootstrap resamples)."""
    from ml.evaluation.metrics import rank_auroc

    auroc = rank_auroc(probs, labels)
    known = auroc[~np.isnan(auroc)]
    return np.append(auroc, known.mean() if known.size else np.nan)


def figures(pred: dict[str, Any], n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """The report at the stored thresholds, with bootstrap intervals on every AUROC."""
    from ml.evaluation.metrics import bootstrap_ci, classification_report

    probs, labels = pred["probs"], pred["labels"]
    report = classification_report(probs, labels, pred["task"], pred["pathologies"], pred["thresholds"])
    point = auroc_with_mean(probs, labels)
    with warnings.catch_warnings():  # a label without positives is NaN in every resample: expected
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = bootstrap_ci(probs, labels, auroc_with_mean, n_resamples=n_resamples, seed=seed)
    per_class = {}
    for j, name in enumerate(pred["pathologies"]):
        c = dict(report["per_class"][name])
        c["annotated"] = c.pop("n", None)  # rows where the label is known
        positives = c["support"]
        # With a handful of positives many resamples have none: an interval would look tighter than it is.
        c["auroc_ci"] = None if np.isnan(point[j]) or positives < MIN_POSITIVES else [float(lo[j]), float(hi[j])]
        c["auroc_note"] = ("undefined: no positives in this split" if positives == 0 else
                           "undefined: no negatives in this split" if positives == len(labels) else
                           f"unreliable: only {positives} positives" if positives < MIN_POSITIVES else "")
        per_class[name] = c
    out = {k: report[k] for k in ("n", "mean_auroc", "accuracy", "accuracy_at_0.5", "macro_f1", "micro_f1",
                                  "macro_precision", "macro_recall", "micro_precision", "micro_recall",
                                  "confusion_matrix") if k in report}
    out["mean_auroc_ci"] = None if np.isnan(point[-1]) else [float(lo[-1]), float(hi[-1])]
    out["per_class"] = per_class
    out["bootstrap"] = {"resamples": n_resamples, "seed": seed, "confidence": 0.95, "method": "percentile"}
    if str(pred["task"]) == "binary":
        out |= operating_point(probs[:, 0], labels[:, 0], float(pred["thresholds"][0]))
    if pred.get("source") is not None and "by_source" not in pred:
        out["by_source"] = {}
        for source in sorted(set(pred["source"])):
            rows = pred["source"] == source
            sub = pred | {"probs": probs[rows], "labels": labels[rows], "by_source": True}
            out["by_source"][str(source)] = figures(sub, n_resamples, seed)
            three = three_class(sub)
            if three is not None:
                out["by_source"][str(source)]["three_class"] = three
    return out


THREE_CLASS = ("normal", "Pneumonia", "Tuberculosis")


def three_class(pred: dict[str, Any]) -> dict[str, Any] | None:
    """Normal / pneumonia / tuberculosis decisions of a multi-label model, on rows that annotate both labels.

    A row is the label whose probability exceeds its threshold by the larger ratio, or normal when neither
    does; macro-F1 and accuracy over the three classes (comparable with the 3-class model's figures).
    """
    names = list(pred["pathologies"])
    if "Pneumonia" not in names or "Tuberculosis" not in names:
        return None
    cols = [names.index("Pneumonia"), names.index("Tuberculosis")]
    labels = pred["labels"][:, cols]
    rows = ~np.isnan(labels).any(axis=1)
    if not rows.any() or (labels[rows].sum(axis=0) == 0).any():
        return None
    labels, probs = labels[rows], pred["probs"][rows][:, cols]
    thresholds = np.asarray(pred["thresholds"], dtype=np.float64)[cols]
    truth = np.where(labels[:, 1] > 0.5, 2, np.where(labels[:, 0] > 0.5, 1, 0))
    ratio = probs / thresholds
    decision = np.where(ratio.max(axis=1) >= 1, ratio.argmax(axis=1) + 1, 0)
    f1s = []
    for k in range(3):
        tp = float(((decision == k) & (truth == k)).sum())
        fp = float(((decision == k) & (truth != k)).sum())
        fn = float(((decision != k) & (truth == k)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"n": int(rows.sum()), "classes": list(THREE_CLASS), "macro_f1": float(np.mean(f1s)),
            "f1": dict(zip(THREE_CLASS, f1s, strict=True)), "accuracy": float((decision == truth).mean())}


def operating_point(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity and accuracy of one binary label at `threshold` (known rows only)."""
    known = ~np.isnan(labels)
    y, d = labels[known] > 0.5, probs[known] >= threshold
    return {"sensitivity": float(d[y].mean()) if y.any() else float("nan"),
            "specificity": float((~d[~y]).mean()) if (~y).any() else float("nan"),
            "accuracy": float((d == y).mean()) if y.size else float("nan")}


POLICIES = (("youden", {}), ("youden_mid", {}), ("f1", {}), ("sensitivity", {"target_sensitivity": 0.90}),
            ("sensitivity", {"target_sensitivity": 0.95}), ("sensitivity", {"target_sensitivity": 0.97}))


def policy_table(val: dict[str, Any], test: dict[str, Any]) -> list[dict[str, Any]]:
    """For a binary model: each threshold policy's cut chosen on validation, and where it lands on test.

    The served threshold is the one stored in the checkpoint (the recipe's policy); the others show how the
    policies transfer from validation to a test set (read once, with the served model's probabilities).
    """
    from ml.evaluation.metrics import choose_thresholds

    rows = []
    for policy, kwargs in (*POLICIES, ("fixed 0.5", None)):
        cut = 0.5 if kwargs is None else float(choose_thresholds(val["probs"], val["labels"], policy, **kwargs)[0])
        name = policy + (f" {kwargs['target_sensitivity']:.2f}" if kwargs and "target_sensitivity" in kwargs else "")
        rows.append({"policy": name, "threshold": cut,
                     "val": operating_point(val["probs"][:, 0], val["labels"][:, 0], cut),
                     "test": operating_point(test["probs"][:, 0], test["labels"][:, 0], cut)})
    return rows


# --- training ------------------------------------------------------------------------------------


def retrain(recipe_path: Path, data_root: Path, run_dir: Path, threads: int, seed: int | None = None,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`fit` on the recipe from scratch (with `seed` in place of the recipe's, and `overrides`' `dataset_options`
    and `params` merged over its own); returns how long it took."""
    import torch

    from ml.config import TrainConfig, merge_tables
    from ml.config import load_recipe as load_checked
    from ml.training.loop import fit

    torch.set_num_threads(threads)
    raw = load_checked(recipe_path)
    raw.pop("description", None)
    raw.pop("quality", None)
    raw["data_root"] = str(data_root)
    for table, values in (overrides or {}).items():
        raw[table] = merge_tables(raw.get(table, {}), values)
    if seed is not None:
        raw.setdefault("params", {})["seed"] = seed
    config = TrainConfig.parse(raw)
    started = time.perf_counter()
    result = fit(config, run_dir, resume=False)
    seconds = time.perf_counter() - started
    training = {"train_seconds": round(seconds, 1), "epochs": result.report["epochs_run"],
                "best_epoch": result.best_epoch, "device": result.device, "threads": threads,
                "how": "tools.quality --retrain: wall clock of fit(), data loading included", "machine": machine()}
    (run_dir / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    return training


def retrain_ensemble(recipe_path: Path, data_root: Path, run_dir: Path, threads: int,
                     members: list[dict[str, Any]]) -> dict[str, Any]:
    """One run of the recipe per member (its seed and overrides), joined into an `ensemble` (`cxr ensemble`) at
    `run_dir/model.pt` and calibrated on the validation split with the recipe's threshold policy
    (`cxr calibrate`)."""
    from ml.checkpoint import save_checkpoint
    from ml.ensemble import join_checkpoints
    from ml.evaluation.evaluate import calibrate_checkpoint

    runs = [run_dir / member_run_name(m, i) for i, m in enumerate(members)]
    trained = [retrain(recipe_path, data_root, run, threads, m["seed"], {k: v for k, v in m.items() if k != "seed"})
               for m, run in zip(members, runs, strict=True)]
    save_checkpoint(join_checkpoints([run / "model.pt" for run in runs]), run_dir / "model.pt")
    recipe = load_recipe(recipe_path)
    # validation only, as the shipped ensembles were calibrated: the test split is read once, by the measurement
    calibrate_checkpoint(run_dir / "model.pt", dataset=recipe["dataset"], data_root=data_root,
                         dataset_options=recipe.get("dataset_options"), val_only=True)
    training = {"train_seconds": round(sum(t["train_seconds"] for t in trained), 1),
                "epochs": trained[0]["epochs"], "best_epoch": ", ".join(str(t["best_epoch"]) for t in trained),
                "device": trained[0]["device"], "threads": threads,
                "how": f"tools.quality --retrain: {len(members)} runs of the recipe ({', '.join(r.name for r in runs)}) "
                       "one after another, joined by cxr ensemble and calibrated",
                "machine": machine()}
    (run_dir / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    return training


def run_training(run_dir: Path, train_seconds: float | None) -> dict[str, Any] | None:
    """What a finished run folder says about its training (`training.json`, else the seconds given)."""
    path = run_dir / "training.json"
    if path.exists():
        return json.loads(path.read_text())
    if train_seconds is None:
        return None
    report = json.loads((run_dir / "report.json").read_text())
    return {"train_seconds": train_seconds, "epochs": report["epochs_run"], "best_epoch": report["best_epoch"],
            "device": report["device"], "threads": 2, "how": "wall clock of `time cxr train --config RECIPE`",
            "machine": machine()}


# --- one model -----------------------------------------------------------------------------------


def run_model(name: str, entry: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    recipe_path = REPO_ROOT / entry["recipe"]
    recipe = load_recipe(recipe_path)
    data_root = resolve_data_root(recipe["data_root"], args.data, args.data_root)
    model_dir = REPO_ROOT / "models" / Path(entry["path"]).parent
    checkpoint = REPO_ROOT / "models" / entry["path"]
    metrics_path = model_dir / "metrics.json"
    training = json.loads(metrics_path.read_text()).get("training") if metrics_path.exists() else None
    if args.retrain or args.run:
        run_dir = args.run or args.runs / name
        if args.retrain:
            log.info("training %s from %s into %s", name, entry["recipe"], run_dir)
            if members := ensemble_members(entry):  # an ensemble of the recipe's model, one run per member
                retrain_ensemble(recipe_path, data_root, run_dir, args.threads, members)
            else:
                retrain(recipe_path, data_root, run_dir, args.threads)
        training = run_training(run_dir, args.train_seconds)
        checkpoint = run_dir / "model.pt"
    val = predict_split(checkpoint, recipe, data_root, "val")
    if args.val_only:  # a candidate that is not shipped: its figures come from validation, the test stays unread
        test, test_set = val, "VALIDATION split (--val-only: the test split was not read)"
    else:
        test_recipe, test_root, test_set = test_source(recipe, data_root, args.data)
        test = predict_split(checkpoint, test_recipe, test_root, "test")
    result = {
        "name": name,
        "recipe": entry["recipe"],
        "checkpoint": str(checkpoint.relative_to(REPO_ROOT)) if checkpoint.is_relative_to(REPO_ROOT) else str(checkpoint),
        "size_bytes": checkpoint.stat().st_size,
        "labels": test["pathologies"],
        "task": str(test["task"]),
        # the recipe's splits; the test count from the test set actually read (it may be another dataset)
        "split_sizes": val["split_sizes"] | {"test": len(test["probs"])},
        "thresholds": [float(t) for t in test["thresholds"]],
        "threshold_policy": test["meta"]["train_config"]["params"].get("threshold_policy"),
        "tta": test["tta"],
        "data_config": test["data_config"],
        "model_name": test["meta"]["model_name"],
        "model_kwargs": test["meta"]["model_kwargs"],
        "best_epoch": test["meta"]["epoch"],  # counting from 1
        "train_config": test["meta"]["train_config"],
        "test_set": test_set,
        "test": figures(test, args.resamples),
        "val": figures(val, args.resamples),
        "training": training,
        "calibration": test["meta"].get("calibration"),  # issue 17: from `cxr calibrate` or training
    }
    if result["task"] == "binary":
        result["threshold_policies"] = policy_table(val, test)
    print_figures(result)
    if args.ship:
        ship(result, checkpoint, model_dir, entry)
    return result


def ship(result: dict[str, Any], checkpoint: Path, model_dir: Path, entry: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    target = REPO_ROOT / "models" / entry["path"]
    store_quality(checkpoint, target, quality_of(result))
    result["checkpoint"] = str(target.relative_to(REPO_ROOT))
    result["size_bytes"] = target.stat().st_size
    (model_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (model_dir / "CARD.md").write_text(render_card(result, entry))
    print(f"shipped: {target.relative_to(REPO_ROOT)}, {model_dir.relative_to(REPO_ROOT)}/CARD.md")


def quality_of(result: dict[str, Any]) -> dict[str, Any]:
    """The summary a checkpoint stores as `metrics["quality"]` (what GET /models shows as `quality`)."""
    test = result["test"]
    q: dict[str, Any] = {
        "test_set": result["test_set"],
        "n": test["n"],
        "per_label_auroc": {k: c["auroc"] for k, c in test["per_class"].items()},
        "per_label_auroc_ci": {k: c["auroc_ci"] for k, c in test["per_class"].items()},
        "mean_auroc": test["mean_auroc"],
        "mean_auroc_ci": test["mean_auroc_ci"],
        "threshold_policy": result["threshold_policy"],
        "measured_by": f"python -m tools.quality --model {result['name']}",
    }
    for key in ("accuracy", "sensitivity", "specificity", "macro_f1"):
        if key in test:
            q[key] = test[key]
    if "by_source" in test:
        q["per_dataset_auroc"] = {s: {k: c["auroc"] for k, c in f["per_class"].items() if c["auroc"] is not None}
                                  for s, f in test["by_source"].items()}
    return q


def store_quality(source: Path, target: Path, summary: dict[str, Any]) -> None:
    """Write `source`'s checkpoint to `target` with `summary` as its stored test evaluation."""
    from ml.checkpoint import load_checkpoint, plain, save_checkpoint

    ckpt = load_checkpoint(source)
    ckpt["metrics"] = dict(ckpt.get("metrics") or {}) | {"quality": plain(summary)}
    save_checkpoint(ckpt, target)


# --- output --------------------------------------------------------------------------------------


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "    n/a     "


def print_figures(r: dict[str, Any]) -> None:
    t = r["test"]
    print(f"\n== {r['name']}  ({r['model_name']}, {r['checkpoint']}, {r['size_bytes'] / 1e6:.2f} MB)")
    if r["training"]:
        tr = r["training"]
        print(f"   trained {tr['train_seconds'] / 60:.1f} min on {tr['device']} ({tr.get('threads')} threads), "
              f"{tr['epochs']} epochs, best epoch {tr['best_epoch']}")
    auc = f"{t['mean_auroc']:.4f}" if t["mean_auroc"] is not None else "n/a"
    accuracy = f"  accuracy {t['accuracy']:.4f}" if "accuracy" in t else ""
    line = (f"   test n={t['n']}: mean AUROC {auc} {_ci(t['mean_auroc_ci'])}{accuracy}"
            f"  macro-F1 {t['macro_f1']:.4f}  micro-F1 {t['micro_f1']:.4f}")
    if "accuracy_at_0.5" in t:
        line += f"  (accuracy at 0.5: {t['accuracy_at_0.5']:.4f})"
    print(line)
    print(f"   test set: {r['test_set']}")
    if "specificity" in t:
        print(f"   at the served threshold {r['thresholds'][0]:.3f} ({r['threshold_policy']}): sensitivity "
              f"{t['sensitivity']:.4f}  specificity {t['specificity']:.4f}  accuracy {t['accuracy']:.4f}")
    for row in r.get("threshold_policies", []):
        v, te = row["val"], row["test"]
        print(f"     policy {row['policy']:<18} cut {row['threshold']:.3f}  val sens {v['sensitivity']:.3f} spec "
              f"{v['specificity']:.3f}  ->  test sens {te['sensitivity']:.3f} spec {te['specificity']:.3f} "
              f"acc {te['accuracy']:.3f}")
    for source, f in t.get("by_source", {}).items():
        aurocs = ", ".join(f"{k} {c['auroc']:.3f} {_ci(c['auroc_ci'])}" for k, c in f["per_class"].items()
                           if c["auroc"] is not None)
        print(f"   [{source}] n={f['n']} mean AUROC {f['mean_auroc']:.4f} {_ci(f['mean_auroc_ci'])}: {aurocs}")
        if "three_class" in f:
            print(f"   [{source}] normal/pneumonia/tuberculosis: macro-F1 {f['three_class']['macro_f1']:.4f}, "
                  f"accuracy {f['three_class']['accuracy']:.4f}")
    print(f"   {'label':<20}{'AUROC':>8} {'95% CI':>16}{'P':>7}{'R':>7}{'F1':>7}{'thr':>7}{'pos':>6}")
    for name, c in t["per_class"].items():
        auc = f"{c['auroc']:.4f}" if c["auroc"] is not None else "   n/a"
        thr = "argmax" if r["task"] == "multiclass" else f"{c['threshold']:.3f}"
        print(f"   {name:<20}{auc:>8} {_ci(c['auroc_ci']):>16}{c['precision']:>7.3f}{c['recall']:>7.3f}"
              f"{c['f1']:>7.3f}{thr:>7}{c['support']:>6}  {c['auroc_note']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a model name from models/manifest.toml (repeatable)")
    parser.add_argument("--data", type=Path, default=DEFAULT_SHARED,
                        help="the shared data folder that recipe paths under ../shared/data point into")
    parser.add_argument("--data-root", help="this model's dataset path, replacing the recipe's (one --model)")
    parser.add_argument("--retrain", action="store_true", help="train from the recipe first (its fixed seed)")
    parser.add_argument("--ship", action="store_true", help="copy the weights to models/ and write metrics + card")
    parser.add_argument("--run", type=Path, help="take the model of this finished run folder (one --model)")
    parser.add_argument("--train-seconds", type=float, help="with --run: its measured training wall time")
    parser.add_argument("--runs", type=Path, default=REPO_ROOT / "runs" / "quality", help="run folders for --retrain")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for --retrain")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--recipe", type=Path, help="with --run: a model that is not in the manifest, by its recipe")
    parser.add_argument("--val-only", action="store_true",
                        help="figures on the validation split only, the test split unread (a candidate, not shipped)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    models = shipped_models()
    if args.recipe:
        if not args.run or args.ship:
            parser.error("--recipe needs --run and cannot --ship (add the model to models/manifest.toml to ship it)")
        name = args.run.name
        models = {name: {"name": name, "recipe": str(args.recipe), "path": f"{name}/model.pt"}}
        args.model = [name]
    if args.val_only and args.ship:
        parser.error("--val-only figures cannot ship: a shipped model's card reports its test split")
    names = args.model or list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; with a recipe in models/manifest.toml: {', '.join(models)}")
    if (args.data_root or args.run) and len(names) != 1:
        parser.error("--data-root and --run need exactly one --model")
    if args.run and not args.retrain and not (args.run / "model.pt").is_file():
        parser.error(f"{args.run} holds no model.pt: not a finished run folder (is its training still running?)")
    if args.train_seconds is not None and not args.run:
        parser.error("--train-seconds goes with --run: it is that run's measured training wall time")
    if (args.train_seconds is not None and not args.retrain
            and not any((args.run / f).is_file() for f in ("training.json", "report.json"))):
        parser.error(f"--train-seconds: {args.run} has no report.json (written by `cxr train`) to give the epochs "
                     "beside it, nor a training.json; for a checkpoint joined by `cxr ensemble`, write training.json")
    results = [run_model(name, models[name], args) for name in names]
    summary = {r["name"]: {k: r[k] for k in ("checkpoint", "training")} | {"test": {
        k: v for k, v in r["test"].items() if k != "per_class"}} for r in results}
    label = "quality" if not args.model else "quality-" + "-".join(names)
    print(f"\nraw: {write_result(label, {'models': summary})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
