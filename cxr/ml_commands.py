"""Commands over the ML library: train, evaluate, gradcam, architectures, datasets (`cxr predict`, which also
reads the registry, is in `cxr.model_commands`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ml.config import TTA_MODES, load_recipe, merge_tables
from ml.errors import ConfigError
from ml.training.reporter import Reporter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model; writes a run folder")
    p.add_argument("--config", type=Path, help="a TOML recipe (model, dataset, data_root, [dataset_options], [params])")
    p.add_argument("--model", help="architecture (see `cxr architectures`)")
    p.add_argument("--dataset", help="dataset adapter name (see `cxr datasets`)")
    p.add_argument("--data", help="dataset root: a folder or file")
    p.add_argument("--out", type=Path, help="run folder (default runs/<model>-<dataset>-<time>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training parameter, e.g. --set loss=focal --set augment.hflip=true")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an adapter option, e.g. --dataset-option split=patient")
    p.add_argument("--no-resume", action="store_true", help="start over even if the run folder has last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--devices", type=int, help="train on this many devices, one process each (data parallel)")
    p.add_argument("--data-cache", type=Path, help="prepared dataset cache folder (default: <artifact root>/prepared)")
    p.add_argument("--no-data-cache", action="store_true", help="decode the source images instead of the cache")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, help="folder for report.json and plots")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time views to average (ml.tta); default the checkpoint's own")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit temperatures on a trained checkpoint's validation split (no "
                                         "retraining), re-choose its thresholds, report ECE/Brier")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--config", type=Path, help="the recipe it was trained with (its dataset, data and options)")
    p.add_argument("--dataset")
    p.add_argument("--data")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, help="write here instead of replacing the checkpoint")
    p.add_argument("--report", type=Path, help="folder for calibration.json and reliability plots")
    p.add_argument("--tta", choices=TTA_MODES, help="views to average (ml.tta), stored with the model so that serving "
                   "answers with them; default the checkpoint's own")
    p.add_argument("--threshold-policy", help="default: the policy the checkpoint was trained with")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--val-only", action="store_true",
                   help="fit and report on the validation split only; the test split stays unread (a candidate)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("ensemble", help="join trained checkpoints of one architecture into one ensemble "
                                        "checkpoint (logits averaged); calibrate it next")
    p.add_argument("members", nargs="+", type=Path, help="member checkpoints (model.pt of each run)")
    p.add_argument("--out", required=True, type=Path, help="the ensemble checkpoint to write")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("gradcam", help="write a Grad-CAM overlay PNG for one image")
    p.add_argument("image", type=Path)
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--target", default="top", help="a label, or 'top' for the most probable")
    p.add_argument("--method", default="gradcam", help="gradcam, gradcam++, xgradcam, eigencam, layercam")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_gradcam)

    p = sub.add_parser("architectures", help="list the model architectures you can train (registered models: "
                                             "`cxr models`)")
    p.set_defaults(func=cmd_architectures)
    p = sub.add_parser("datasets", help="list dataset adapters")
    p.set_defaults(func=cmd_datasets)


# --- train ---------------------------------------------------------------------------------------


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`a.b=1` pairs to a nested dict; values are JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got '{item}'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def train_config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = load_recipe(args.config) if args.config else {}
    raw.pop("description", None)
    raw.pop("quality", None)  # how tools.quality measures the model, not part of training
    for key, value in (("model", args.model), ("dataset", args.dataset), ("data_root", args.data)):
        if value is not None:
            raw[key] = value
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
             "device": args.device, "devices": getattr(args, "devices", None)}
    params = merge_tables(raw.get("params", {}), {k: v for k, v in flags.items() if v is not None})
    raw["params"] = merge_tables(params, parse_assignments(args.set))
    raw["dataset_options"] = merge_tables(raw.get("dataset_options", {}), parse_assignments(args.dataset_option))
    for key, flag in (("model", "--model"), ("dataset", "--dataset"), ("data_root", "--data")):
        if key not in raw:
            raise ConfigError(f"{flag} is required (or give it in --config)")
    return raw


def cmd_train(args: argparse.Namespace) -> int:
    from cxr.data_commands import default_cache_dir
    from ml.config import TrainConfig
    from ml.training.distributed import launch
    from ml.training.loop import fit

    config = TrainConfig.parse(train_config_from_args(args))
    out = args.out or Path("runs") / f"{config.model}-{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    reporter = _ProgressReporter(quiet=args.quiet)
    cache = None if args.no_data_cache else args.data_cache or default_cache_dir()
    started = time.perf_counter()
    if config.params.devices > 1:
        result = launch(config, out, reporter=reporter, resume=not args.no_resume, cache_dir=cache)
    else:
        result = fit(config, out, reporter=reporter, resume=not args.no_resume, cache_dir=cache)
    minutes = (time.perf_counter() - started) / 60
    print(f"run folder: {result.run_dir}  (device {result.device}, {minutes:.1f} min)")
    print(f"best epoch: {result.best_epoch}; model: {result.model_path}")
    for split, rep in result.report["splits"].items():
        print(f"{split}: {format_summary(rep)}")
    return 0


def format_summary(report: dict[str, Any]) -> str:
    parts = [f"n={report['n']}"]
    for key in ("mean_auroc", "accuracy", "accuracy_at_0.5", "macro_f1", "micro_f1"):
        if report.get(key) is not None:
            parts.append(f"{key}={report[key]:.4f}")
    return " ".join(parts)


class _ProgressReporter(Reporter):
    """tqdm progress per epoch and one line of metrics after each."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.epochs = 0

    def on_start(self, *, start_epoch: int, epochs: int, steps_per_epoch: int, device: str) -> None:
        self.epochs = epochs
        if start_epoch:
            print(f"resuming after epoch {start_epoch}", file=sys.stderr)
        print(f"training on {device}: {epochs} epochs x {steps_per_epoch} steps", file=sys.stderr)

    def on_step(self, *, epoch: int, step: int, steps: int, loss: float) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{self.epochs}", leave=False, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def on_epoch_end(self, *, epoch: int, metrics: dict[str, dict[str, Any]]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        train, val = metrics["train"], metrics["val"]
        auc = val.get("mean_auroc")
        print(f"epoch {epoch}/{self.epochs}: train loss {train['loss']:.4f}  val loss {val['loss']:.4f}  "
              f"val AUROC {auc:.4f}" if auc is not None else f"epoch {epoch}: val loss {val['loss']:.4f}",
              file=sys.stderr)

    def on_checkpoint(self, **_: Any) -> None:
        pass

    def on_evaluation(self, **_: Any) -> None:
        pass

    def should_stop(self) -> bool:
        return False


# --- evaluate, predict, gradcam ------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ml.evaluation.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data,
                                 dataset_options=parse_assignments(args.dataset_option), split=args.split,
                                 out_dir=args.out, device=args.device, tta=args.tta)
    split_report = report["splits"][args.split]
    print(f"{args.split}: {format_summary(split_report)}")
    for name, c in split_report["per_class"].items():
        auc = f"{c['auroc']:.4f}" if c["auroc"] is not None else "  n/a "
        print(f"  {name:<20} AUROC {auc}  P {c['precision']:.3f}  R {c['recall']:.3f}  F1 {c['f1']:.3f}  "
              f"(threshold {c['threshold']:.3f}, {c['support']}/{c['n']} positive)")
    if args.out:
        print(f"report: {args.out / 'report.json'}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ml.evaluation.evaluate import calibrate_checkpoint

    recipe = load_recipe(args.config) if args.config else {}
    dataset, data = args.dataset or recipe.get("dataset"), args.data or recipe.get("data_root")
    if not dataset or not data:
        raise ConfigError("calibrate needs --config RECIPE, or --dataset and --data")
    options = {**recipe.get("dataset_options", {}), **parse_assignments(args.dataset_option)}
    report = calibrate_checkpoint(args.checkpoint, dataset=dataset, data_root=data, dataset_options=options,
                                  out=args.out, report_dir=args.report, threshold_policy=args.threshold_policy,
                                  device=args.device, val_only=args.val_only, tta=args.tta)
    cal = report["calibration"]
    print(f"{report['checkpoint']}: temperatures "
          + ", ".join(f"{t:.3f}" for t in cal["temperatures"]) + " (fitted on val); thresholds "
          + ", ".join(f"{t:.3f}" for t in report["thresholds"]) + f" ({report['threshold_policy']})")
    for split, s in cal["splits"].items():
        print(f"  {split} (n={s['n']}): ECE {s['ece_before']:.4f} -> {s['ece_after']:.4f}, "
              f"Brier {s['brier_before']:.4f} -> {s['brier_after']:.4f}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from ml.checkpoint import save_checkpoint
    from ml.ensemble import join_checkpoints

    ckpt = join_checkpoints(args.members)
    save_checkpoint(ckpt, args.out)
    kwargs = ckpt["model_kwargs"]
    print(f"{args.out}: {kwargs['count']} x {kwargs['member']}, labels {', '.join(ckpt['labels'])}; thresholds "
          f"0.5 until `cxr calibrate {args.out} --config RECIPE` fits it on validation and chooses them there")
    return 0


def cmd_gradcam(args: argparse.Namespace) -> int:
    from ml.explain.gradcam import compute_cams, encode_png, overlay
    from ml.imaging import read_image
    from ml.inference import LoadedModel

    loaded = LoadedModel.from_checkpoint(args.checkpoint)
    image = read_image(args.image)
    x = loaded.preprocess(image)[None]
    probs = loaded.predict_tensor(x)[0]
    if args.target == "top":
        target = int(probs.argmax())
    elif args.target in loaded.labels:
        target = loaded.labels.index(args.target)
    else:
        raise ConfigError(f"unknown target '{args.target}'; labels: {', '.join(loaded.labels)} (or 'top')")
    (cam,) = compute_cams(loaded.model, x, [target], method=args.method)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(encode_png(overlay(image, cam)))
    print(f"{args.out}: {args.method} for '{loaded.labels[target]}' (p={probs[target]:.4f})")
    return 0


def cmd_architectures(args: argparse.Namespace) -> int:
    from ml.models import get_model_config, list_models

    for name in list_models():
        cfg = get_model_config(name)
        print(f"{name:<18} {cfg.input_size:>4}px  {cfg.in_chans}ch  {cfg.normalization:<14} {cfg.description}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from ml.data import describe_dataset, list_datasets

    for name in list_datasets():
        print(f"{name:<16} {describe_dataset(name)}")
    return 0
