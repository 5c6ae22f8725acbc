"""`cxr data prepare`: build the prepared dataset cache (`ml.data.prepared`) ahead of a job, with progress."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    p = data_sub.add_parser("prepare", help="decode and resize a dataset's images once into the prepared cache, "
                                            "where training then reads them")
    p.add_argument("--dataset", required=True, help="dataset adapter name (see `cxr datasets`)")
    p.add_argument("--data", required=True, help="dataset root: a folder or file")
    p.add_argument("--size", type=int, required=True, help="input size in pixels (the job's input_size)")
    p.add_argument("--split", action="append", default=[], help="only this split (repeatable; default: all)")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resize-mode", default="shorter", choices=["shorter", "squash"])
    p.add_argument("--crop-pct", type=float, default=1.0)
    p.add_argument("--cache", type=Path, help="cache folder (default: <artifact root>/prepared, where workers look)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes (default: cores)")
    p.set_defaults(func=cmd_prepare)


def default_cache_dir() -> Path:
    """Where workers and `cxr train` keep prepared caches: `prepared/` under the artifact root."""
    from registry.settings import RegistrySettings

    return Path(RegistrySettings().artifact_root) / "prepared"


def cmd_prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cxr.ml_commands import parse_assignments
    from ml.config import DataConfig
    from ml.data import create_dataset
    from ml.data.prepared import prepare

    dataset = create_dataset(args.dataset, args.data, **parse_assignments(args.dataset_option))
    cfg = DataConfig(input_size=args.size, resize_mode=args.resize_mode, crop_pct=args.crop_pct)
    cache = args.cache or default_cache_dir()
    for split in args.split or dataset.splits():
        rows = dataset.split(split)
        started = time.perf_counter()
        with tqdm(total=len(rows), desc=f"{args.dataset}/{split}", unit="img", file=sys.stderr) as bar:
            def progress(done: int, total: int, bar: tqdm = bar) -> None:
                bar.update(done - bar.n)

            prepared = prepare(f"{args.dataset}-{split}", rows.images, cfg, cache, workers=args.workers,
                               progress=progress)
        seconds = time.perf_counter() - started
        what = f"written in {seconds:.1f} s ({len(prepared) / seconds:.0f} img/s)" if prepared.built else "already there"
        print(f"{split}: {len(prepared)} images at {args.size} px: {prepared.folder} ({what})")
    return 0
