"""What a start of the API costs, this tree against another revision side by side: `import ml.png` alone (its
decode loops, compiled or read from numba's on-disk cache) and `cxr api` serving the shipped `pneumonia` model
until /health/ready answers.

    python -m bench.startup [--against REV] [--repeats 3]

Each measurement in a fresh process, the trees in turn, `--repeats` times, each with numba's cache folder
(`NUMBA_CACHE_DIR`) in two states: empty (cold: a first start, or a host whose cache was never written) and
filled by one earlier start of the same tree (warm: every later start). Wall seconds, medians; the ratio is
this tree's over REV's. Without `--against`, this tree alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import server as srv
from bench.common import REPO_ROOT

PNEUMONIA = REPO_ROOT / "models" / "pneumonia" / "model.pt"


def _import_seconds(tree: Path, cache: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ml.png"], cwd=tree, check=True,
                   env={**os.environ, "NUMBA_CACHE_DIR": str(cache)})
    return time.perf_counter() - started


def _ready_seconds(tree: Path, folder: Path, registry_url: str, cache: Path) -> float:
    """Seconds from the process's start to /health/ready (the model loaded)."""
    server = srv.start(folder, registry_url, tree=tree, env={"NUMBA_CACHE_DIR": str(cache)},
                       default_model="pneumonia", alias_refresh_seconds=3600)
    ready = time.perf_counter() - server.started_at
    server.stop()
    return ready


def measure(trees: dict[str, Path], root: Path, repeats: int) -> dict[str, dict[str, list[float]]]:
    registries = {}
    for label, tree in trees.items():
        folder = root / f"registry-{len(registries)}"
        folder.mkdir()
        registries[label] = (folder, srv.make_registry_for(tree, folder, {"pneumonia": PNEUMONIA}))
    figures: dict[str, dict[str, list[float]]] = {label: {} for label in trees}
    for repeat in range(repeats):
        for number, (label, tree) in enumerate(trees.items()):
            folder, url = registries[label]
            caches = root / f"numba-{number}-{repeat}"
            warm = caches / "warm"
            _import_seconds(tree, warm)  # one start fills it
            for state, for_import, for_api in (("cold", caches / "cold-import", caches / "cold-api"),
                                               ("warm", warm, warm)):
                figures[label].setdefault(f"import ml.png, {state}", []).append(_import_seconds(tree, for_import))
                figures[label].setdefault(f"cxr api to ready, {state}", []).append(
                    _ready_seconds(tree, folder, url, for_api))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="also this git revision, side by side")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(f"{os.cpu_count()} CPUs; wall seconds, medians of {args.repeats} (each in a fresh process)")
    with tempfile.TemporaryDirectory(prefix="cxr-startup-") as tmp:
        root = Path(tmp)
        trees = {"this tree": REPO_ROOT}
        if args.against:
            other = root / "other"
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-q", str(other),
                            args.against], check=True)
            trees[args.against] = other
        try:
            figures = measure(trees, root, args.repeats)
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(root / "other")],
                               check=False)
    labels = list(trees)
    print(f"{'':<28}" + "".join(f"{label:>14}" for label in labels) + (f"{'ratio':>8}" if len(labels) == 2 else ""))
    for key in figures[labels[0]]:
        medians = [statistics.median(figures[label][key]) for label in labels]
        ratio = f"{medians[0] / medians[1]:>8.2f}" if len(medians) == 2 else ""
        print(f"{key:<28}" + "".join(f"{m:>14.2f}" for m in medians) + ratio)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
