"""Decode + preprocess, before and after `ml.decoding`, side by side in one run; and the 28 px model's `/predict`
end to end against another revision's server.

    python -m bench.decoding [--repeats 60] [--against REV] [--samples 30] [--check-only]

1. In this process, for the 1024 px PNG sample and the two JPEG samples, for the 28 px model (`pneumonia`) and a
   224 px input: `read_image` + resize (before) and `read_image_for` + resize (after), in turn; the median of
   the calling thread's CPU time (what the work costs, whatever else runs on the machine's cores) and of the
   wall time. The process runs with the API's malloc settings (`cxr api` sets them: freed buffers stay
   resident, so a decode's large arrays are not faulted in afresh each time); `--default-malloc` runs it
   with glibc's defaults instead.
2. The input check (`ml.trust.InputGate.check`) of each upload's decoded image, before (numpy's percentiles,
   the gate's network in eager PyTorch: the check as it was until f3e441b, rebuilt here from the same parts)
   and after (as served), in turn; thread CPU medians, and each part's.
3. With `--against REV`: `cxr api` of this tree and of REV (a temporary worktree) serving the shipped `pneumonia`
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

import numpy as np
import torch

from bench import server as srv
from bench.common import REPO_ROOT
from bench.serving import KeepAliveClient
from ml.config import DataConfig
from ml.decoding import read_image_for
from ml.imaging import read_image
from ml.inference import LoadedModel
from ml.transforms import Preprocess
from ml.trust import InputGate, cheap_reasons, colour_fraction, gate_input
from ml.trust import checks as trust_checks
from ml.trust import gate as trust_gate

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


def _check_before(gate: InputGate, image: object, colour: float | None, size: tuple[int, int]) -> None:
    """The check as it was: `np.percentile` in the cheap checks and the gate's input, the eager network."""
    saved = trust_checks.percentiles, trust_gate.percentiles
    trust_checks.percentiles = trust_gate.percentiles = np.percentile
    try:
        gate.check(image, colour, size)  # type: ignore[arg-type]
    finally:
        trust_checks.percentiles, trust_gate.percentiles = saved


def input_check(repeats: int) -> None:
    torch.set_num_threads(1)
    before, after = InputGate.load(runtime="eager"), InputGate.load()
    print(f"\ninput check (InputGate.check) of the decoded upload: thread CPU ms, medians of {repeats} in turn"
          f" (network: {after.runtime})")
    print(f"{'upload':<32}{'size':>11}{'before':>8}{'after':>8}{'ratio':>7}   after's parts: colour, cheap checks,"
          " gate input, network")
    for name in UPLOADS:
        med, shape = _time_check((SAMPLES / name).read_bytes(), before, after, repeats)
        print(f"{name:<32}{shape:>11}{med['before']:>8.2f}{med['after']:>8.2f}{med['after'] / med['before']:>7.2f}   "
              + ", ".join(f"{med[k]:.2f}" for k in ("colour", "cheap", "input", "network")))


def _time_check(data: bytes, before: InputGate, after: InputGate, repeats: int) -> tuple[dict[str, float], str]:
    decoded = read_image_for(data, short_side=28)
    image, size, colour = decoded.image, (decoded.height, decoded.width), colour_fraction(data)
    x = gate_input(image)[None]
    ways = {"before": lambda: _check_before(before, image, colour, size),
            "after": lambda: after.check(image, colour, size),
            "colour": lambda: colour_fraction(data), "cheap": lambda: cheap_reasons(image, colour, size),
            "input": lambda: gate_input(image), "network": lambda: after.scores(x)}
    cpu: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(repeats):
        for key, fn in ways.items():
            c = time.thread_time()
            fn()
            cpu[key].append((time.thread_time() - c) * 1000)
    return {k: statistics.median(v) for k, v in cpu.items()}, f"{image.shape[1]}x{image.shape[0]}"


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
    parser.add_argument("--check-only", action="store_true", help="only the input check (2.)")
    args = parser.parse_args(argv)
    if not args.default_malloc and any(os.environ.get(k) != v for k, v in API_MALLOC.items()):
        # glibc reads them at start-up: run again with them
        os.execve(sys.executable, [sys.executable, "-m", "bench.decoding", *(sys.argv[1:] if argv is None else argv)],
                  {**os.environ, **API_MALLOC})
    as_api = all(os.environ.get(k) == v for k, v in API_MALLOC.items())
    print("malloc:", " ".join(f"{k}={v}" for k, v in API_MALLOC.items()) + " (as the API runs)" if as_api
          else "glibc's defaults")
    if not args.check_only:
        in_process(args.repeats)
    input_check(args.repeats)
    if args.against and not args.check_only:
        http(args.against, args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
