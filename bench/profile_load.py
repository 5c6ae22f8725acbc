"""Where a `/predict` spends the server's time under load: `cxr api` serving one shipped model, 16 clients posting
the 1024 px PNG for `--seconds`, sampled by py-spy (all threads, idle ones left out), each sample put in one
category by the innermost frame it recognises.

    python -m bench.profile_load [--model pneumonia] [--seconds 20] [--py-spy PATH] [--tree PATH]

py-spy is not a dependency of the project: `pip install py-spy` where you run this, or pass its path.
Prints the categories' shares of the samples and the load's req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench import server as srv
from bench.common import REPO_ROOT
from bench.serving import SAMPLE_PNG, _load

# (category, substrings of a frame: file path or function), the first that matches the innermost frames wins
CATEGORIES = (
    ("PNG/JPEG decode and conversion", ("PIL/", "imdecode", "ml/decoding.py", "ml/imaging.py")),
    ("decode checks", ("ml/codestreams.py",)),
    ("resize", ("ml/transforms.py", "interpolate (")),
    ("forward (runtime)", ("onnxruntime", "ml/runtime.py", "torch/nn/modules")),
    ("multipart parsing", ("multipart", "formparsers", "python_multipart")),
    ("request body / limits", ("app/api/limits.py", "app/api/protocol.py")),
    ("HTTP (uvicorn, h11)", ("uvicorn/", "h11/", "httptools")),
    ("routing / validation (FastAPI, pydantic)", ("fastapi/", "pydantic", "starlette/routing", "starlette/middleware")),
    ("response JSON", ("json/", "JSONResponse", "render (")),
    ("logging / metrics", ("logging/", "prometheus_client", "app/serving/metrics.py", "request_id")),
    ("batching / pool hand-off", ("app/serving/batching.py", "app/serving/pool.py", "concurrent/futures",
                                  "anyio/", "to_thread")),
    ("pool thread handing its result to the event loop", ("_call_set_state",)),
    ("event loop (uvloop: native I/O, waiting, callbacks)", ("Runner.run (",)),
    ("asyncio event loop", ("asyncio/",)),
)


def categorise(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_load", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pneumonia")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--tree", type=Path, default=REPO_ROOT, help="the source tree the server runs")
    parser.add_argument("--top", type=int, default=0, help="also print the N most sampled innermost frames")
    args = parser.parse_args(argv)
    png = SAMPLE_PNG.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cxr-profile-") as tmp:
        root = Path(tmp)
        url = srv.make_registry(root, {args.model: REPO_ROOT / "models" / args.model / "model.pt"})
        server = srv.start(root, url, tree=args.tree, default_model=args.model, alias_refresh_seconds=3600)
        try:
            srv.wait_runtime_chosen(server.url, args.model)
            raw = root / "profile.txt"
            spy = subprocess.Popen([args.py_spy, "record", "--pid", str(server.process.pid), "--rate", "250",
                                    "--duration", str(int(args.seconds)), "--format", "raw", "--output", str(raw),
                                    "--nonblocking", "--threads"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            load = asyncio.run(_load(server.url, png, args.seconds, args.clients))
            _, err = spy.communicate(timeout=120)
            if not raw.exists():
                raise RuntimeError(f"py-spy wrote nothing: {err.decode()[-2000:]}")
            counts: collections.Counter[str] = collections.Counter()
            leaves: collections.Counter[str] = collections.Counter()
            for line in raw.read_text().splitlines():
                stack, _, n = line.rpartition(" ")
                if stack and n.isdigit():
                    counts[categorise(stack)] += int(n)
                    leaves[f"{categorise(stack)}: {';'.join(stack.split(';')[-2:])}"] += int(n)
        finally:
            server.stop()
    total = sum(counts.values())
    print(f"/predict of '{args.model}' (1024 px PNG), {args.clients} clients, {args.seconds:.0f} s: "
          f"{len(load['latencies']) / load['seconds']:.1f} req/s, {load['errors']} errors")
    print(f"server samples by category (all threads, idle left out; {total} samples):")
    for name, n in counts.most_common():
        print(f"  {name:<44}{100 * n / total:6.1f} %")
    for leaf, n in leaves.most_common(args.top):
        print(f"  {100 * n / total:5.1f} %  {leaf[:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
