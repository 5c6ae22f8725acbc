"""This tree's API against another revision's, side by side: the same shipped model on copies of one registry,
loaded in alternating rounds by the same clients, so a change's cost to throughput and latency is a ratio
measured in one run (the guide's rule: keep the service's throughput lead while changing things).

    python -m bench.versus REV [--model pneumonia] [--clients 16] [--seconds 40] [--rounds 4]

REV is any git revision (`main`, `HEAD~3`, a commit); it is checked out into a temporary worktree and run with
this checkout's Python environment (`python -m cxr api` with the worktree as working directory imports the
worktree's code). Uploads are the 1024 px PNG sample. Prints req/s, p50 and p99 for both, and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench import server as srv
from bench.common import REPO_ROOT
from bench.serving import SAMPLE_PNG, _interleaved_load

SHIPPED = REPO_ROOT / "models"


def _worktree(revision: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "-q", str(folder), revision],
                   check=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the git revision to compare this tree with")
    parser.add_argument("--model", default="pneumonia", help="a shipped model (models/<name>/model.pt)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=40.0, help="load time per server, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)

    png = SAMPLE_PNG.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cxr-versus-") as tmp:
        root = Path(tmp)
        other = _worktree(args.revision, root / "other")
        try:
            settings = {"default_model": args.model, "alias_refresh_seconds": 3600}
            servers = {}
            for label, tree in (("this tree", REPO_ROOT), (args.revision, other)):
                folder = root / label.replace(" ", "-").replace("/", "_")
                folder.mkdir()
                url = srv.make_registry_for(tree, folder, {args.model: SHIPPED / args.model / "model.pt"})
                servers[label] = srv.start(folder, url, tree=tree, **settings)
            try:
                for server in servers.values():
                    srv.wait_runtime_chosen(server.url, args.model)
                load = _interleaved_load({label: s.url for label, s in servers.items()}, png, args.seconds,
                                         rounds=args.rounds, clients=args.clients)
            finally:
                for server in servers.values():
                    server.stop()
        finally:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(other)], check=False)
            shutil.rmtree(other, ignore_errors=True)

    print(f"/predict of '{args.model}' (1024 px PNG), {args.clients} clients, {args.rounds} alternating rounds")
    print(f"{'tree':<24}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for label, r in load.items():
        print(f"{label:<24}{r['requests']:>9}{r['errors']:>8}{r['req_per_s']:>9.1f}"
              f"{r['latency_ms']['median']:>9.1f}{r['latency_ms']['p99']:>9.1f}")
    mine, theirs = load["this tree"], load[args.revision]
    print(f"this tree / {args.revision}: throughput {mine['req_per_s'] / theirs['req_per_s']:.3f}x, "
          f"p50 {mine['latency_ms']['median'] / theirs['latency_ms']['median']:.3f}x, "
          f"p99 {mine['latency_ms']['p99'] / theirs['latency_ms']['p99']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
