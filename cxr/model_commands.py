"""Commands over the model registry: `cxr models` (registered models), `cxr publish` (a `cxr train` run folder
becomes a model version, the way the worker publishes one) and `cxr predict` (by registry reference or
checkpoint file, over files, folders and globs, as a table, CSV or JSON lines)."""

from __future__ import annotations

import argparse
import csv
import glob
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ml.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff", ".bmp")
PREDICT_BATCH = 16  # images decoded and run at once: bounds memory over a large folder
CLI_ACTOR = "cli"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models (versions, aliases, test AUROC); "
                                      "architectures: `cxr architectures`")
    _registry_args(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("publish", help="register a `cxr train` run folder's model as a new model version")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run folder (its model.pt), or a checkpoint file")
    p.add_argument("--name", required=True, help="the model name it becomes a version of")
    p.add_argument("--alias", help="point this alias (e.g. production) at the new version")
    p.add_argument("--description", default="", help="a note stored with the version")
    _registry_args(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("predict", help="per-pathology probabilities for images, folders or globs")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="files, folders (searched recursively) or globs")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="REF", help="a registered model: NAME (its production alias), NAME@ALIAS "
                                                       "or NAME:VERSION")
    source.add_argument("--checkpoint", type=Path, help="a checkpoint file instead of a registered model")
    p.add_argument("--format", choices=["table", "csv", "jsonl"], default="table",
                   help="table for people (default); csv (a row per image) or jsonl (an object per image)")
    p.add_argument("--json", action="store_true", help="one JSON array of the results (as before --format)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    _registry_args(p)
    p.set_defaults(func=cmd_predict)


def _registry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="registry database URL (default: CXR_DATABASE_URL or the embedded SQLite file)")
    p.add_argument("--artifact-root", help="artifact store folder (default: CXR_ARTIFACT_ROOT or var/artifacts)")


@contextmanager
def _registry(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """A registry session (committed on success) and the artifact store, from flags or the environment."""
    from registry.artifacts import artifact_store
    from registry.db import Database
    from registry.settings import RegistrySettings

    settings = RegistrySettings()
    db = Database(args.url or settings.database_url)
    try:
        with db.session() as session:
            yield session, artifact_store(args.artifact_root or settings.artifact_root)
    finally:
        db.dispose()


# --- models ----------------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from registry.versions import list_versions

    with _registry(args) as (session, _):
        versions = list_versions(session)
    for v in versions:
        auroc = (v.metrics.get("test") or {}).get("mean_auroc") if isinstance(v.metrics, dict) else None
        shown = f"test AUROC {auroc:.3f}" if isinstance(auroc, (int, float)) else "test AUROC n/a"
        aliases = " ".join(f"@{a}" for a in v.aliases)
        print(f"{v.ref:<32} {v.architecture:<18} {len(v.labels):>2} label(s)  {shown:<16} "
              f"{v.created_at:%Y-%m-%d %H:%M}  {aliases}")
    if not versions:
        print("no registered models yet: `cxr publish RUN_DIR --name NAME` or a training job adds one")
    print("(architectures you can train: `cxr architectures`)", file=sys.stderr)
    return 0


# --- publish ---------------------------------------------------------------------------------------


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Load the checkpoint as serving would (weights into its architecture), run one blank image through it
    and check it answers a finite probability per label; its registry summary."""
    import numpy as np

    from ml.checkpoint import checkpoint_summary, load_checkpoint
    from ml.errors import ModelError
    from ml.inference import LoadedModel

    ckpt = load_checkpoint(path)
    loaded = LoadedModel.from_checkpoint(ckpt)
    size = loaded.data_config.input_size
    probs = loaded.predict_images([np.zeros((size, size), np.float32)])
    if probs.shape != (1, len(loaded.labels)) or not np.isfinite(probs).all():
        raise ModelError(f"{path}: the model answers {probs.shape} values, some not finite, for "
                         f"{len(loaded.labels)} labels: not publishable")
    return checkpoint_summary(ckpt)


def cmd_publish(args: argparse.Namespace) -> int:
    from registry.artifacts import sha256_file
    from registry.audit import record_event
    from registry.publish import publish_checkpoint
    from registry.versions import NAME_PATTERN, list_versions, set_alias

    if not re.fullmatch(NAME_PATTERN, args.name):
        raise ConfigError(f"--name '{args.name}' is not a model name (letters, digits, '.', '_', '-')")
    if args.alias is not None and not re.fullmatch(NAME_PATTERN, args.alias):
        raise ConfigError(f"--alias '{args.alias}' is not an alias name (letters, digits, '.', '_', '-')")
    path = args.run_dir / "model.pt" if args.run_dir.is_dir() else args.run_dir
    if not path.is_file():
        raise ConfigError(f"{args.run_dir}: no model.pt in it (a `cxr train` run folder has one)")
    summary = verify_checkpoint(path)
    sha256 = sha256_file(path)
    with _registry(args) as (session, store):
        known = next((v for v in list_versions(session, name=args.name)
                      if v.checkpoint and v.checkpoint.sha256 == sha256), None)
        if known is not None:
            version, verb = known, "already published as"
            if args.alias:
                version = set_alias(session, name=args.name, alias=args.alias, version=known.version)
        else:
            version = publish_checkpoint(
                session, store, local_path=path, key=f"models/{args.name}/{sha256[:16]}/model.pt", name=args.name,
                summary=summary, description=args.description or f"published from {args.run_dir.name} by cxr publish",
                alias=args.alias)
            verb = "published as"
        record_event(session, actor=CLI_ACTOR, action="model.published", target=f"/models/{args.name}",
                     details={"version": version.version, "sha256": sha256, "alias": args.alias})
    aliases = " ".join(f"@{a}" for a in version.aliases)
    print(f"{path}: {verb} {version.ref} ({summary['architecture']}, {len(summary['labels'])} label(s)) {aliases}".rstrip())
    return 0


# --- predict ---------------------------------------------------------------------------------------


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for images, globs expanded; in order, each once."""
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise ConfigError(f"{item}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise ConfigError(f"{item}: no file matches this pattern")
        elif path.is_file():
            matches = [path]
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
        found.extend(matches)
    return list(dict.fromkeys(found))


def _load(args: argparse.Namespace) -> tuple[Any, str]:
    """The model to run and how to name it in the output."""
    from ml.inference import LoadedModel

    if args.checkpoint is not None:
        return LoadedModel.from_checkpoint(args.checkpoint, device=args.device), str(args.checkpoint)
    from registry.versions import resolve

    with _registry(args) as (session, store):
        record = resolve(session, args.model)
        if record.checkpoint is None:
            raise ConfigError(f"model {record.ref} has no checkpoint")
        data = store.read_bytes(record.checkpoint.uri, sha256=record.checkpoint.sha256)  # verified as served
    return LoadedModel.from_checkpoint(data, device=args.device), record.ref


def predict_rows(loaded: Any, model: str, paths: list[Path]) -> Iterator[dict[str, Any]]:
    """One result per image, in order; an unreadable image gives a row with `error` instead."""
    from ml.errors import CXRError
    from ml.imaging import read_image

    for start in range(0, len(paths), PREDICT_BATCH):
        batch, images, failed = paths[start:start + PREDICT_BATCH], [], {}
        for path in batch:
            try:
                images.append(read_image(path))
            except (CXRError, OSError) as exc:
                failed[path] = " ".join(str(exc).split())
        probs = iter(loaded.predict_images(images)) if images else iter(())
        for path in batch:
            if path in failed:
                yield {"file": str(path), "model": model, "error": failed[path]}
                continue
            pred = loaded.explain_probabilities(next(probs))
            yield {
                "file": str(path), "model": model, "probabilities": pred.probabilities,
                "thresholds": pred.thresholds, "positive": pred.positive,
                "findings": [{"label": label, "probability": p, "threshold": pred.thresholds[label],
                              "decision": "positive" if label in pred.positive else "negative"}
                             for label, p in pred.probabilities.items()],
            }


def cmd_predict(args: argparse.Namespace) -> int:
    loaded, model = _load(args)
    paths = expand_inputs(args.images)
    rows = predict_rows(loaded, model, paths)
    failures = 0
    if args.json:
        results = list(rows)
        failures = sum("error" in r for r in results)
        print(json.dumps(results, indent=2))
    elif args.format == "csv":
        labels = list(loaded.labels)
        columns = ["file", "model", *labels, *(f"{label}:decision" for label in labels), "positive", "error"]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            failures += "error" in row
            out = {"file": row["file"], "model": row["model"], "error": row.get("error", "")}
            if "error" not in row:
                out.update({label: f"{row['probabilities'][label]:.6f}" for label in labels})
                out.update({f"{f['label']}:decision": f["decision"] for f in row["findings"]})
                out["positive"] = ";".join(row["positive"])
            writer.writerow(out)
    elif args.format == "jsonl":
        for row in rows:
            failures += "error" in row
            print(json.dumps(row))
    else:
        for row in rows:
            if "error" in row:
                failures += 1
                print(f"{row['file']}: error: {row['error']}", file=sys.stderr)
                continue
            print(f"{row['file']}:")
            for f in sorted(row["findings"], key=lambda f: -f["probability"]):
                mark = "*" if f["decision"] == "positive" else " "
                print(f"  {mark} {f['label']:<20} {f['probability']:.4f}  (threshold {f['threshold']:.3f})")
    if failures:
        print(f"{failures} of {len(paths)} image(s) could not be read", file=sys.stderr)
    return 1 if failures else 0
