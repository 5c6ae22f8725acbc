"""What a shipped model's eager forward (with its test-time views, `ml.tta`) costs against the same model as
shipped at another revision:

    python -m bench.ensembles --against REV [--calls 40] [--threads 2]

For every model in `models/manifest.toml` whose weights differ from REV's (an ensemble grown by members, or
replaced), both checkpoints are loaded here and called in turn on one random image at the model's input size,
batch 1, `--calls` times after a warm-up (`bench.common.interleaved`): the median wall and CPU ms of each,
side by side in one run. The served cost,
decoding and the chosen runtime included, is `python -m bench.overlays --against REV --own-models`.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import tomllib
from pathlib import Path

from bench.common import REPO_ROOT, interleaved, machine, write_result

SHIPPED = REPO_ROOT / "models"


def _shipped_at(rev: str, path: str) -> bytes | None:
    """The bytes of `models/<path>` at `rev`, or None where it had no such file."""
    done = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{rev}:models/{path}"], capture_output=True,
                          check=False)
    return done.stdout if done.returncode == 0 else None


def changed_models(rev: str) -> dict[str, tuple[Path, bytes]]:
    """name -> (this tree's checkpoint, REV's bytes) for each shipped model whose weights changed since REV."""
    out = {}
    for entry in tomllib.loads((SHIPPED / "manifest.toml").read_text())["model"]:
        ours = SHIPPED / entry["path"]
        theirs = _shipped_at(rev, entry["path"])
        if theirs is not None and theirs != ours.read_bytes():
            out[entry["name"]] = (ours, theirs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ensembles", description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", required=True, help="the revision whose shipped weights to time")
    parser.add_argument("--calls", type=int, default=40, help="timed calls of each checkpoint, in turn")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from ml.inference import LoadedModel

    torch.set_num_threads(args.threads)
    changed = changed_models(args.against)
    if not changed:
        print(f"no shipped model's weights differ from {args.against}")
        return 0
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cxr-ensembles-") as tmp, torch.inference_mode():
        for name, (ours, theirs_bytes) in changed.items():
            theirs = Path(tmp) / f"{name}.pt"
            theirs.write_bytes(theirs_bytes)
            models = {"this tree": LoadedModel.from_checkpoint(ours), args.against: LoadedModel.from_checkpoint(theirs)}
            dc = models["this tree"].data_config
            x = torch.randn(1, dc.in_chans, dc.input_size, dc.input_size)
            medians = interleaved({label: loaded.predict_tensor for label, loaded in models.items()}, x, args.calls)
            rows[name] = {label: {"members": _members(models[label]), "views": models[label].tta,
                                  "wall_ms": wall, "cpu_ms": cpu}
                          for label, (wall, cpu) in medians.items()}

    print(f"eager forward with the checkpoint's test-time views, batch 1, {args.threads} threads, median of "
          f"{args.calls} calls in turn:")
    print(f"{'model':<20}{'tree':<12}{'members':>8}{'views':>7}{'wall ms':>9}{'CPU ms':>8}")
    for name, by_tree in rows.items():
        for label, r in by_tree.items():
            print(f"{name:<20}{label:<12}{r['members']:>8}{r['views']:>7}{r['wall_ms']:>9.2f}{r['cpu_ms']:>8.2f}")
    print(f"\nraw: {write_result('ensembles', {'machine': machine(), 'against': args.against, 'models': rows})}")
    return 0


def _members(loaded) -> int:
    return len(getattr(loaded.model, "members", [])) or 1


if __name__ == "__main__":
    raise SystemExit(main())
