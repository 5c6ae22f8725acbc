"""`fit`: one training run from a `TrainConfig` to a run folder.

The run folder holds `config.json`, `metrics.jsonl` (one line per epoch and split), `last.pt` (every
epoch, resumable), `best.pt` (best validation mean AUROC), `model.pt` (the best weights with their
operating thresholds and evaluation metrics: what gets served), `report.json` and PNG plots.

Read `fit` top to bottom; each numbered step is a small function below it. Side effects reach the
outside only through the `Reporter`. (The shape follows nanoGPT's `train.py`.)

Under data parallelism (`ml.training.distributed` starts one process per device and initialises the
process group before calling `fit`), every rank trains on its share of each global batch (`batch_size`
stays the global batch), gradients are averaged by `DistributedDataParallel`, training and validation
metrics are reduced across ranks, and only rank 0 writes the run folder and talks to the reporter.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ml.checkpoint import build_checkpoint, checkpoint_epoch, load_checkpoint, save_checkpoint
from ml.config import DataConfig, TrainConfig
from ml.data import CXRDataset, create_dataset
from ml.data.base import Task
from ml.data.batches import Batches, fits_in_memory, limit_rows
from ml.data.prepared import prepare
from ml.device import autocast, resolve_amp, resolve_device
from ml.errors import ConfigError, TrainingCancelled
from ml.evaluation.plots import save_plots
from ml.evaluation.predict import calibration_for_checkpoint, evaluate_splits, predict_batches
from ml.models import CXRModel, create_model, get_model_config
from ml.training.ema import WeightAverage
from ml.training.losses import LossFn, build_loss
from ml.training.reporter import Reporter
from ml.transforms import BatchAugment, Preprocess, compute_mean_std, resolve_data_config

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    run_dir: Path
    model_path: Path
    device: str
    best_epoch: int
    best_metric: float | None
    history: list[dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    """What changes from epoch to epoch and must survive a resume."""

    epoch: int = 0  # epochs completed
    best_metric: float | None = None
    best_epoch: int = 0  # counting from 1, like every epoch a person reads; 0: none yet
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def fit(config: TrainConfig, run_dir: str | Path, reporter: Reporter | None = None, resume: bool = True, *,
        cache_dir: str | Path | None = None) -> FitResult:
    """Train `config.model` on `config.dataset`, evaluate the best epoch, write the run folder.

    With `resume=True` an existing `last.pt` in `run_dir` is continued exactly (same weights as an
    uninterrupted run on the same device). With `cache_dir`, each split's resized images come from the
    prepared cache there (`ml.data.prepared`), written on first use. Raises `TrainingCancelled` when the
    reporter asks to stop.
    """
    p = config.params
    rank, world = _rank_world()
    main = rank == 0
    reporter = (reporter or Reporter()) if main else Reporter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if p.batch_size % world:
        raise ConfigError(f"batch_size {p.batch_size} must be a multiple of the {world} devices (it is the global batch)")

    # 1. Device and numeric precision.
    device = resolve_device(p.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())  # set per rank by the launcher
    amp_dtype = resolve_amp(p.amp, device)
    torch.manual_seed(p.seed)

    # 2. Data: the dataset's splits, capped for quick runs.
    dataset = create_dataset(config.dataset, config.data_root, **config.dataset_options)
    train_ds = limit_rows(dataset.split(p.train_split), p.max_train_samples, p.seed)
    val_ds = limit_rows(dataset.split(p.val_split), p.max_eval_samples, p.seed)
    test_ds = _optional_split(dataset, p.test_split, p.max_eval_samples, p.seed)
    log.info("data %s: train %d, val %d, test %d", config.dataset, len(train_ds), len(val_ds), len(test_ds or ()))

    # 3. Model and the data config that goes with it (training and serving share it).
    model_kwargs = dict(p.model_kwargs)
    model = create_model(
        config.model,
        num_classes=dataset.num_classes,
        in_chans=p.in_chans,
        pretrained=p.pretrained,
        pretrained_path=p.pretrained_path,
        **model_kwargs,
    ).to(device)
    data_cfg = _data_config(config, model, train_ds)
    preprocess = Preprocess(data_cfg)
    augment = BatchAugment(p.augment)

    # 4. Batches: from the prepared cache, else decoded once into memory when they fit, else a DataLoader
    #    with workers. Each rank draws its share; the test split is only evaluated by rank 0.
    def batches(ds: CXRDataset, split: str, *, train: bool, shard: tuple[int, int] = (rank, world)) -> Batches:
        # ranks build a sharded split's cache together (rank 0 writes, then the others open it)
        prepared = _prepared(config, ds, split, data_cfg, cache_dir, p.num_workers, main, shard[1])
        return _batches(ds, preprocess, p, device, train=train, prepared=prepared, shard=shard)

    train_batches = batches(train_ds, "train", train=True)
    val_batches = batches(val_ds, "val", train=False)
    test_batches = batches(test_ds, "test", train=False, shard=(0, 1)) if test_ds is not None and main else None

    # 5. Loss, optimiser, scheduler, gradient scaler.
    loss_fn = build_loss(
        p.loss,
        dataset.task,
        train_labels=train_ds.labels,
        use_pos_weight=p.pos_weight,
        focal_gamma=p.focal_gamma,
        label_smoothing=p.label_smoothing,
        device=device,
    )
    optimizer = _optimizer(model, p.optimizer, p.lr, p.weight_decay)
    scheduler = _scheduler(optimizer, p.scheduler, p.epochs, p.plateau_factor, p.plateau_patience)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    # with `ema_decay`, the weight average is what is validated, kept as best and shipped (ml.training.ema)
    average = WeightAverage(model, p.ema_decay) if p.ema_decay else None
    evaluated = average.module if average is not None else model

    # 6. Resume from the last checkpoint when one exists (every rank reads it).
    state = _State()
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and last_path.exists():
        state = _restore(last_path, config, model, optimizer, scheduler, scaler, average)
        log.info("resuming %s after epoch %d", run_dir, state.epoch)
    elif main:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    if main:
        _write_json(run_dir / "config.json", {"train_config": config.model_dump(mode="json"),
                                              "data_config": data_cfg.model_dump(mode="json"),
                                              "device": str(device), "devices": world})
    trained = _data_parallel(model, device) if world > 1 else model
    reporter.on_start(start_epoch=state.epoch, epochs=p.epochs, steps_per_epoch=len(train_batches), device=str(device))
    reporter.on_phase(phase="training")

    def checkpoint(weights: CXRModel = evaluated, **extra: Any) -> dict[str, Any]:
        return build_checkpoint(weights, model_kwargs=model_kwargs, labels=dataset.pathologies, task=str(dataset.task),
                                data_config=data_cfg, train_config=config.model_dump(mode="json"), **extra)

    # 7. Epochs: train, validate, schedule, checkpoint, stop early. `epoch` indexes the RNG streams (from 0);
    # `number` is the epoch as metrics, checkpoints, reports and logs name it (from 1).
    while state.epoch < p.epochs and state.stale_epochs < (p.early_stopping_patience or math.inf):
        epoch = state.epoch
        number = epoch + 1
        if p.freeze_epochs:
            model.freeze_backbone(epoch < p.freeze_epochs)
        _seed_epoch(p.seed, epoch)
        generator = torch.Generator().manual_seed(_epoch_seed(p.seed, epoch))
        train_metrics = _train_epoch(trained, train_batches, augment, preprocess, loss_fn, optimizer, scaler,
                                     device, amp_dtype, p, epoch, generator, reporter, average)
        val_metrics = _validate(evaluated, val_batches, preprocess, loss_fn, device, amp_dtype, dataset.task)
        score = val_metrics["mean_auroc"] if val_metrics["mean_auroc"] is not None else -val_metrics["loss"]
        _step_scheduler(scheduler, score)

        state.epoch = number
        improved = state.best_metric is None or score > state.best_metric
        if improved:
            state.best_metric, state.best_epoch, state.stale_epochs = score, number, 0
        else:
            state.stale_epochs += 1
        metrics = {"train": train_metrics, "val": val_metrics}
        state.history.append({"epoch": number, **metrics})
        if main:
            _append_metrics(run_dir / "metrics.jsonl", number, metrics)
            training_state = _training_state(state, optimizer, scheduler, scaler, average)
            save_checkpoint(checkpoint(model, epoch=number, metrics=metrics, best_metric=state.best_metric,
                                       training_state=training_state), last_path)
            reporter.on_checkpoint(path=last_path, kind="last", epoch=number, metrics=metrics)
            if improved:
                save_checkpoint(checkpoint(epoch=number, metrics=metrics, best_metric=score), best_path)
                reporter.on_checkpoint(path=best_path, kind="best", epoch=number, metrics=metrics)
            reporter.on_epoch_end(epoch=number, metrics=metrics)
        if _any_rank(reporter.should_stop(), world):
            raise TrainingCancelled(f"cancelled after epoch {number}")

    if not main:  # rank 0 alone evaluates and publishes; the others are done
        return FitResult(run_dir, run_dir / "model.pt", str(device), state.best_epoch, state.best_metric,
                         state.history)

    # 8. Evaluate the best epoch: thresholds from validation, then the test split.
    if reporter.should_stop():
        raise TrainingCancelled(f"cancelled after epoch {state.epoch}")
    reporter.on_phase(phase="evaluating")
    best = load_checkpoint(best_path)
    best_epoch = checkpoint_epoch(best) or 0
    model.load_state_dict(best["state_dict"])
    if world > 1:  # rank 0 alone: the whole validation split
        val_batches = batches(val_ds, "val", train=False, shard=(0, 1))
    report = evaluate_splits(model, preprocess, dataset, {"val": val_batches, "test": test_batches},
                             device, amp_dtype, p.threshold_policy, p.tta,
                             target_sensitivity=p.threshold_sensitivity)
    for split, split_report in report["splits"].items():
        reporter.on_evaluation(split=split, report=split_report)
    summary = {split: _summary(r) for split, r in report["splits"].items()}
    calibration = calibration_for_checkpoint(report["calibration"]) if "calibration" in report else None
    for split, figures in (calibration or {}).get("splits", {}).items():
        summary[split].update({k: v for k, v in figures.items() if k != "n"})
    if calibration and "test" in calibration["splits"]:  # GET /models shows these in `quality`
        summary["calibration"] = {"method": calibration["method"], **calibration["splits"]["test"]}
    model_path = save_checkpoint(
        checkpoint(model, epoch=best_epoch, thresholds=report["thresholds"], metrics=summary, best_metric=state.best_metric,
                   calibration=calibration),
        run_dir / "model.pt",
    )
    reporter.on_checkpoint(path=model_path, kind="final", epoch=best_epoch, metrics=summary)
    report.update(best_epoch=best_epoch, epochs_run=state.epoch, device=str(device), pathologies=dataset.pathologies)
    _write_json(run_dir / "report.json", report)
    save_plots(run_dir, state.history, report, dataset.pathologies)
    return FitResult(run_dir, model_path, str(device), best_epoch, state.best_metric, state.history, report)


# --- 2-4. data -----------------------------------------------------------------------------------


def _optional_split(dataset: CXRDataset, name: str | None, limit: int | None, seed: int) -> CXRDataset | None:
    if name is None or name not in dataset.splits():
        return None
    return limit_rows(dataset.split(name), limit, seed)


def _data_config(config: TrainConfig, model: CXRModel, train_ds: CXRDataset) -> DataConfig:
    """The model's data config with the run's overrides; 'dataset' statistics come from training images."""
    p = config.params
    model_cfg = get_model_config(config.model)
    normalization = p.normalization or model_cfg.normalization
    common: dict[str, Any] = dict(input_size=p.input_size, in_chans=model.cfg.in_chans,
                                  resize_mode=p.resize_mode, crop_pct=p.crop_pct)
    if normalization != "dataset":
        return resolve_data_config(model_cfg, normalization=normalization, **common)
    resize_only = Preprocess(resolve_data_config(model_cfg, normalization="minus_one_one", **common))
    sample = limit_rows(train_ds, 2000, p.seed)
    mean, std = compute_mean_std([sample[i][0] for i in range(len(sample))], resize_only)
    return resolve_data_config(model_cfg, normalization="dataset", mean=(mean,), std=(std,), **common)


def _prepared(config: TrainConfig, ds: CXRDataset, split: str, data_cfg: DataConfig, cache_dir: str | Path | None,
              workers: int, main: bool, world: int) -> torch.Tensor | None:
    """The split's prepared cache as a uint8 tensor (rank 0 builds it; the others then open it)."""
    if cache_dir is None:
        return None
    for turn in ("build", "open") if world > 1 else ("build",):
        if (turn == "build") == main:
            cached = prepare(f"{config.dataset}-{split}", ds.images, data_cfg, cache_dir, workers=workers)
        if world > 1:
            torch.distributed.barrier()
    return cached.tensor()


def _batches(ds: CXRDataset, preprocess: Preprocess, p: Any, device: torch.device, *, train: bool,
             prepared: torch.Tensor | None = None, shard: tuple[int, int] = (0, 1)) -> Batches:
    in_memory = p.cache_images and fits_in_memory(len(ds), preprocess.cfg.input_size)
    # An adapter may weight its rows (a merged dataset mixes its members so); training then samples by them.
    weights = ds.metadata["sample_weight"].to_numpy() if train and "sample_weight" in ds.metadata else None
    return Batches(ds, preprocess, batch_size=p.batch_size, shuffle=train, drop_last=train, in_memory=in_memory,
                   num_workers=p.num_workers, pin_memory=device.type == "cuda",
                   persistent_workers=device.type == "cuda", prepared=prepared, shard=shard,
                   sample_weights=weights)


# --- data parallelism ----------------------------------------------------------------------------


def _rank_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _data_parallel(model: CXRModel, device: torch.device) -> torch.nn.Module:
    """DDP around `model` (rank 0's weights are broadcast). On GPUs BatchNorm becomes SyncBatchNorm, so its
    batch statistics are the global batch's as in one process (same parameter names: checkpoints load into
    the plain model); on the CPU (gloo, where PyTorch has no SyncBatchNorm) they stay per rank."""
    if device.type == "cuda":
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces the children in place
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def _collective_device() -> torch.device:
    """Where a collective's tensors live: NCCL reduces CUDA tensors only, gloo CPU ones."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _any_rank(flag: bool, world: int) -> bool:
    """True on every rank when `flag` is true on any (so all ranks stop at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def _sum_ranks(*values: float) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    torch.distributed.all_reduce(t)
    return t.tolist()


# --- 5. optimisation ---------------------------------------------------------------------------


def _optimizer(model: CXRModel, kind: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation parameters (1-D tensors).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


def _scheduler(optimizer: torch.optim.Optimizer, kind: str, epochs: int, factor: float, patience: int) -> Any:
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=factor, patience=patience)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None


def _step_scheduler(scheduler: Any, score: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(score)
    elif scheduler is not None:
        scheduler.step()


# --- 6. resume -----------------------------------------------------------------------------------


def _training_state(state: _State, optimizer: Any, scheduler: Any, scaler: Any,
                    average: WeightAverage | None) -> dict[str, Any]:
    return {
        "weight_average": average.state_dict() if average is not None else None,
        "epoch": state.epoch,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "stale_epochs": state.stale_epochs,
        "history": state.history,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64))},
    }


def _restore(path: Path, config: TrainConfig, model: CXRModel, optimizer: Any, scheduler: Any, scaler: Any,
             average: WeightAverage | None) -> _State:
    ckpt = load_checkpoint(path)
    if ckpt["model_name"] != config.model:
        raise ConfigError(f"{path} holds model '{ckpt['model_name']}', not '{config.model}': use a new run folder")
    ts = ckpt.get("training_state")
    if ts is None:
        raise ConfigError(f"{path} has no training state to resume from")
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ts["optimizer"])
    if scheduler is not None and ts["scheduler"] is not None:
        scheduler.load_state_dict(ts["scheduler"])
    scaler.load_state_dict(ts["scaler"])
    if average is not None:
        if ts.get("weight_average") is None:
            raise ConfigError(f"{path} was trained without ema_decay: resume it without, or use a new run folder")
        average.load_state_dict(ts["weight_average"])
    torch.set_rng_state(ts["rng"]["torch"])
    history, best_epoch = list(ts["history"]), ts["best_epoch"]
    if ckpt.get("epochs_from") != 1:  # written before epochs counted from 1: name them as now
        history, best_epoch = [{**h, "epoch": h["epoch"] + 1} for h in history], best_epoch + 1
    return _State(ts["epoch"], ts["best_metric"], best_epoch, ts["stale_epochs"], history)


# --- 7. one epoch ------------------------------------------------------------------------------


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def _seed_epoch(seed: int, epoch: int) -> None:
    """Every epoch starts from RNG states derived from (seed, epoch), so a resumed run repeats exactly."""
    s = _epoch_seed(seed, epoch)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)


def _train_epoch(
    model: torch.nn.Module,
    batches: Batches,
    augment: BatchAugment,
    preprocess: Preprocess,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    p: Any,
    epoch: int,
    generator: torch.Generator,
    reporter: Reporter,
    average: WeightAverage | None = None,
) -> dict[str, float | None]:
    model.train()
    world = _rank_world()[1]
    steps = len(batches)
    total_loss, seen, started = 0.0, 0, time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    for step, (images, labels) in enumerate(batches.epoch(generator), start=1):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        x = preprocess.finish(augment(images, generator))
        with autocast(device, amp_dtype):
            logits = model(x)
        loss = loss_fn(logits, labels)
        scaler.scale(loss / p.accum_steps).backward()
        if step % p.accum_steps == 0 or step == steps:
            if p.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update(model.module if isinstance(model, DistributedDataParallel) else model)
        batch_loss = float(loss.detach())
        if not math.isfinite(batch_loss):
            raise FloatingPointError(f"loss became {batch_loss} at epoch {epoch + 1} step {step}; lower the lr")
        total_loss += batch_loss * len(images)
        seen += len(images)
        reporter.on_step(epoch=epoch + 1, step=step, steps=steps, loss=batch_loss)
        if step % p.cancel_check_every == 0 and _any_rank(reporter.should_stop(), world):
            raise TrainingCancelled(f"cancelled at epoch {epoch + 1} step {step}")
    elapsed = time.perf_counter() - started
    if world > 1:
        total_loss, seen = _sum_ranks(total_loss, seen)
    return {"loss": total_loss / max(seen, 1), "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": seen / elapsed if elapsed > 0 else None}


def _validate(model: CXRModel, batches: Batches, preprocess: Preprocess, loss_fn: LossFn, device: torch.device,
              amp_dtype: torch.dtype | None, task: Task) -> dict[str, Any]:
    """Validation loss and the score that keeps the best epoch: the mean AUROC over labels, or for a merged
    dataset the mean over its members of each member's mean AUROC."""
    probs, labels, loss = predict_batches(model, batches, preprocess, device, amp_dtype, task, loss_fn=loss_fn)
    world = _rank_world()[1]
    if world > 1:  # every rank predicted a block of rows: gather them in rank order
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, (probs, labels, (loss or 0.0) * len(labels), len(labels)))
        probs = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        loss = sum(part[2] for part in parts) / max(sum(part[3] for part in parts), 1)
    out: dict[str, Any] = {"loss": loss, "mean_auroc": _mean_auroc(probs, labels)}
    sources = batches.ds.metadata.get("source")
    if sources is not None and sources.nunique() > 1:
        # A merged dataset: each member counts once in the score that keeps the best epoch, whatever its
        # number of labels (NIH's 14 would otherwise outweigh the other members' one or two).
        sources = sources.to_numpy()
        by_source = {str(s): _mean_auroc(probs[sources == s], labels[sources == s]) for s in np.unique(sources)}
        known = [v for v in by_source.values() if v is not None]
        out |= {"mean_auroc_pooled": out["mean_auroc"], "mean_auroc": float(np.mean(known)) if known else None}
        out |= {f"mean_auroc_{s}": v for s, v in by_source.items()}  # numbers only: the registry stores them
    return out


def _mean_auroc(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """The mean AUROC over the labels where it is defined on these rows."""
    from ml.evaluation.metrics import per_class_auroc

    auroc = per_class_auroc(probs, labels)
    known = auroc[~np.isnan(auroc)]
    return float(known.mean()) if known.size else None


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "mean_auroc", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "accuracy",
            "accuracy_at_0.5")
    out: dict[str, Any] = {k: report[k] for k in keys if k in report}
    out["auroc"] = {name: c["auroc"] for name, c in report["per_class"].items()}
    return out


def _append_metrics(path: Path, epoch: int, metrics: dict[str, dict[str, Any]]) -> None:
    with path.open("a") as fh:
        for split, values in metrics.items():
            fh.write(json.dumps({"epoch": epoch, "split": split, **values}) + "\n")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
