"""Decode + preprocess, before and after `ml.decoding`, side by side in one run; and the 28 px model's `/predict`
end to end against another revision's server.

    python -m bench.decoding [--repeats 60] [--against REV] [--samples 30]

1. In this process, for the 1024 px PNG sample and the two JPEG samples, for the 28 px model (`pneumonia`) and a
   224 px input: `read_image` + resize (before) and `read_image_for` + resize (after), in turn; the median of
   the calling thread's CPU time (what the work costs, whatever else runs on the machine's cores) and of the
   wall time. The process runs with the API's malloc settings (`cxr api` sets them: freed buffers stay
   resident, so a decode's large arrays are not faulted in afresh each time); `--default-malloc` runs it
   with glibc's defaults instead.
2. With `--against REV`: `cxr api` of this tree and of REV (a temporary worktree) serving the shipped `pneumonia`
   model, `/predict` of each upload posted to both in turn over keep-alive connections; medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench import server as srv
from bench.common import REPO_ROOT
from bench.serving import KeepAliveClient
from ml.config import DataConfig
from ml.decoding import read_image_for
from ml.imaging import read_image
from ml.inference import LoadedModel
from ml.transforms import Preprocess

SAMPLES = REPO_ROOT / "data" / "samples"
# what `cxr api` sets (cxr.service_commands.MALLOC_ENV; the benchmarks do not import the command line)
API_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}
UPLOADS = ("nih_cxr_1024.png", "person1951_bacteria_4882.jpeg", "NORMAL2-IM-1438-0001.jpeg")


def in_process(repeats: int) -> None:
    torch.set_num_threads(1)
    small = LoadedModel.from_checkpoint(REPO_ROOT / "models" / "pneumonia" / "model.pt").preprocess
    large = Preprocess(DataConfig(input_size=224, in_chans=1, resize_mode="shorter", crop_pct=1.0,
                                  normalization="minus_one_one", mean=(0.5,), std=(0.5,)))
    print("decode + preprocess in this process: thread CPU ms (wall ms), medians of", repeats)
    print(f"{'upload':<32}{'input':>6}{'before':>16}{'after':>16}{'CPU ratio':>10}")
    for name in UPLOADS:
        data = (SAMPLES / name).read_bytes()
        for pre in (small, large):
            side = pre.source_side
            ways = {"before": lambda p=pre, d=data: p.resize(read_image(d)),
                    "after": lambda p=pre, s=side, d=data: p.resize(read_image_for(d, short_side=s).image)}
            cpu: dict[str, list[float]] = {k: [] for k in ways}
            wall: dict[str, list[float]] = {k: [] for k in ways}
            for _ in range(repeats):
                for key, fn in ways.items():
                    c, w = time.thread_time(), time.perf_counter()
                    fn()
                    cpu[key].append((time.thread_time() - c) * 1000)
                    wall[key].append((time.perf_counter() - w) * 1000)
            med = {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in ways}
            print(f"{name:<32}{pre.cfg.input_size:>6}"
                  + "".join(f"{med[k][0]:>8.2f} ({med[k][1]:>5.1f})" for k in ways)
                  + f"{med['after'][0] / med['before'][0]:>10.2f}")


def http(revision: str, samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cxr-decoding-") as tmp:
        root = Path(tmp)
        other = root / "other"
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-q", str(other), revision],
                       check=True)
        servers = {}
        try:
            for label, tree in (("this tree", REPO_ROOT), (revision, other)):
                folder = root / label.replace(" ", "-").replace("/", "_")
                folder.mkdir()
                url = srv.make_registry_for(tree, folder, {"pneumonia": REPO_ROOT / "models" / "pneumonia" / "model.pt"})
                servers[label] = srv.start(folder, url, tree=tree, default_model="pneumonia",
                                           alias_refresh_seconds=3600)
            for server in servers.values():
                srv.wait_runtime_chosen(server.url, "pneumonia")
            print(f"\n/predict of the 28 px model end to end, medians of {samples} in turn (client ms; and the"
                  " server's own timing_ms.decode: decode, input check and resize):")
            print(f"{'upload':<32}{'this tree ms':>13}{revision + ' ms':>14}{'ratio':>7}"
                  f"{'decode here':>13}{'decode ' + revision:>16}")
            for name in UPLOADS:
                clients = {label: KeepAliveClient(s.url, (SAMPLES / name).read_bytes()) for label, s in servers.items()}
                times: dict[str, list[float]] = {label: [] for label in clients}
                decode: dict[str, list[float]] = {label: [] for label in clients}
                for client in clients.values():
                    client.timed("/predict", 3)
                for _ in range(samples):
                    for label, client in clients.items():
                        started = time.perf_counter()
                        body = json.loads(client.post("/predict"))
                        times[label].append((time.perf_counter() - started) * 1000)
                        decode[label].append(body["timing_ms"]["decode"])
                for client in clients.values():
                    client.close()
                mine, theirs = statistics.median(times["this tree"]), statistics.median(times[revision])
                print(f"{name:<32}{mine:>13.1f}{theirs:>14.1f}{mine / theirs:>7.2f}"
                      f"{statistics.median(decode['this tree']):>13.1f}{statistics.median(decode[revision]):>16.1f}")
        finally:
            for server in servers.values():
                server.stop()
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(other)], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decoding", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--against", metavar="REV", help="also /predict end to end against this git revision")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--default-malloc", action="store_true", help="glibc's malloc defaults, not the API's")
    args = parser.parse_args(argv)
    if not args.default_malloc and any(os.environ.get(k) != v for k, v in API_MALLOC.items()):
        # glibc reads them at start-up: run again with them
        os.execve(sys.executable, [sys.executable, "-m", "bench.decoding", *(sys.argv[1:] if argv is None else argv)],
                  {**os.environ, **API_MALLOC})
    as_api = all(os.environ.get(k) == v for k, v in API_MALLOC.items())
    print("malloc:", " ".join(f"{k}={v}" for k, v in API_MALLOC.items()) + " (as the API runs)" if as_api
          else "glibc's defaults")
    in_process(args.repeats)
    if args.against:
        http(args.against, args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
