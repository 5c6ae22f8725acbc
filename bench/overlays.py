"""What a `/gradcam` costs beside a `/predict`, with the default overlay (JPEG, at most 1024 px), for every shipped
model and DenseNet-121@224, and what each overlay encoding costs:

    python -m bench.overlays [--samples 30] [--no-densenet] [--against REV [--own-models]]

1. In this process: the overlay of the 1024 px PNG sample encoded as PNG, JPEG and WebP (median ms of 15,
   size, PSNR against the lossless PNG), the figures `ml.explain.overlays` chose its default from.
2. Through HTTP: one `cxr api` (a temporary SQLite registry holding every shipped model and DenseNet-121 at
   224 px with random weights), each model's runtime trial waited for, then `--samples` sequential
   `/predict` and `/gradcam` (no options: the defaults) of the 1024 px PNG, in turn, over one keep-alive
   connection: the median of each and their ratio (target: at most 2.5x). With `--against REV` the same
   runs against a server of revision REV (checked out into a temporary worktree) in the same loop, sample
   for sample, so the two trees' ratios are side by side in one run. Both serve this tree's `models/` (only
   the code differs) unless `--own-models`, where each serves its own (only the shipped weights differ, when
   REV's code is this tree's: how a model shipped since REV compares with the one it replaced).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

from bench import server as srv
from bench.common import REPO_ROOT
from bench.serving import SAMPLE_PNG, KeepAliveClient

SHIPPED = REPO_ROOT / "models"
TARGET = 2.5


def encodings_table() -> list[dict[str, float | str]]:
    from ml.explain.gradcam import overlay
    from ml.explain.overlays import OVERLAY_FORMATS, encode_overlay
    from ml.imaging import read_image

    image = read_image(SAMPLE_PNG)
    yy, xx = np.mgrid[0:7, 0:7]
    rgb = overlay(image, np.exp(-((yy - 3) ** 2 + (xx - 2) ** 2) / 6).astype(np.float32))
    rows = []
    for fmt in OVERLAY_FORMATS:
        samples, data = [], b""
        for _ in range(15):
            start = time.perf_counter()
            data = encode_overlay(rgb, fmt)
            samples.append((time.perf_counter() - start) * 1000)
        back = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mse = float(((back.astype(np.float64) - rgb) ** 2).mean())
        rows.append({"format": fmt, "encode_ms": statistics.median(samples), "kib": len(data) / 1024,
                     "psnr_db": 10 * np.log10(255**2 / mse) if mse else float("inf")})
    return rows


def _checkpoints(folder: Path, densenet: bool, shipped: Path = SHIPPED) -> dict[str, Path]:
    manifest = tomllib.loads((shipped / "manifest.toml").read_text())
    checkpoints = {entry["name"]: shipped / entry["path"] for entry in manifest["model"]}
    if densenet:
        from bench.models import BenchModel, densenet121_224
        from bench.serving import _checkpoint

        checkpoints["densenet121"] = _checkpoint(BenchModel("densenet121", densenet121_224), folder)
    return checkpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overlays", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="sequential requests of each kind per model")
    parser.add_argument("--no-densenet", action="store_true", help="only the shipped models")
    parser.add_argument("--against", metavar="REV", help="also a server of this git revision, side by side")
    parser.add_argument("--own-models", action="store_true",
                        help="with --against, each tree serves its own models/ (default: both serve this tree's)")
    args = parser.parse_args(argv)
    if args.own_models and not args.against:
        parser.error("--own-models compares two trees' shipped models: give the other tree with --against REV")

    print("overlay of the 1024 px sample, in this process (median of 15 encodes):")
    print(f"{'encoding':<10}{'encode ms':>10}{'KiB':>8}{'PSNR dB':>9}")
    for row in encodings_table():
        print(f"{row['format']:<10}{row['encode_ms']:>10.1f}{row['kib']:>8.0f}{row['psnr_db']:>9.1f}")

    png = SAMPLE_PNG.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cxr-overlays-") as tmp:
        root = Path(tmp)
        trees = {"this tree": REPO_ROOT}
        if args.against:
            trees[args.against] = root / "other"
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-q", str(trees[args.against]),
                            args.against], check=True)
        servers: dict[str, srv.Server] = {}
        try:
            checkpoints = _checkpoints(root, not args.no_densenet)
            names = list(checkpoints)
            for label, tree in trees.items():
                folder = root / label.replace(" ", "-").replace("/", "_")
                folder.mkdir()
                served = checkpoints
                if args.own_models:  # the tree's shipped models, beside this tree's DenseNet (built once)
                    shipped = _checkpoints(folder, False, tree / "models")
                    if set(shipped) != set(_checkpoints(folder, False)):
                        raise SystemExit(f"{label} ships {sorted(shipped)}, this tree {sorted(names)}: compare the "
                                         "same models")
                    served = checkpoints | shipped
                url = srv.make_registry_for(tree, folder, served)
                # not waiting for readiness: the models load as warm models or on their first request
                servers[label] = srv.start(folder, url, tree=tree, wait_ready=False,
                                           default_model=names[0], warm_models=json.dumps(names[1:]),
                                           alias_refresh_seconds=3600, model_cache_size=len(names))
            results = {label: {} for label in servers}
            for name in names:
                clients = {}
                for label, server in servers.items():
                    clients[label] = KeepAliveClient(server.url, png)
                    clients[label].post("/predict", model=name)  # loads it if it is not loaded yet
                    srv.wait_runtime_chosen(server.url, name)
                    for _ in range(3):  # warm-up: the CAM model is cut on the first /gradcam
                        clients[label].post("/gradcam", model=name)
                        clients[label].post("/predict", model=name)
                samples = {label: ([], []) for label in servers}
                for _ in range(args.samples):
                    for label, client in clients.items():
                        predict, cam = samples[label]
                        predict.extend(client.timed("/predict", 1, model=name))
                        cam.extend(client.timed("/gradcam", 1, model=name))
                for label, (predict, cam) in samples.items():
                    overlay = clients[label].post("/gradcam", model=name)
                    kind = "PNG" if overlay.startswith(b"\x89PNG") else "JPEG" if overlay[:2] == b"\xff\xd8" else "?"
                    results[label][name] = (statistics.median(predict), statistics.median(cam),
                                            f"{kind} {len(overlay) / 1024:.0f} KiB")
                for client in clients.values():
                    client.close()
        finally:
            for server in servers.values():
                server.stop()
            if args.against:
                subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(trees[args.against])],
                               check=False)

    print(f"\n/gradcam (default options) over /predict, the 1024 px PNG, medians of {args.samples} in turn:")
    print(f"{'tree':<14}{'model':<20}{'/predict ms':>12}{'/gradcam ms':>12}{'ratio':>7}{'overlay':>15}  "
          f"target <= {TARGET}x")
    for label, rows in results.items():
        for name, (predict, cam, overlay) in rows.items():
            ratio = cam / predict
            print(f"{label:<14}{name:<20}{predict:>12.1f}{cam:>12.1f}{ratio:>7.2f}{overlay:>15}  "
                  f"{'met' if ratio <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
