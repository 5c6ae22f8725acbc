"""A data-parallel rank with a fault at a known point, for the launcher's tests.

`launch` starts each rank as `sys.executable -m ml.training.distributed ...`; the tests point `sys.executable`
at a wrapper that runs this file with the same arguments (`faulty_python`). It sets the fault, then runs the
real rank module as `__main__`. A fault reacting to the launcher's events would race the ranks (the launcher
reads rank 0's events every `poll_s`, in which tiny epochs finish); this one acts inside the rank, when the
epoch named by `CXR_TEST_FAULT` begins (epochs count from 1), on the rank it names:

- `kill`: the rank SIGKILLs itself, on its first launch only (the file `mark` records the pid). Epoch N begins
  after every rank has passed epoch N-1's closing collective, which rank 0 reaches after writing that epoch's
  checkpoint, and rank 0 cannot finish epoch N without the dead rank: the run resumes from epoch N-1.
- `wait_for_stop`: the rank waits (at most 60 s) until the launcher's stop file exists, so that a stop asked
  from the launcher's side lands in epoch N whatever the launcher's latency.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path


def main() -> None:
    fault = json.loads(os.environ["CXR_TEST_FAULT"])
    args = sys.argv[1:]
    if args[:2] != ["-m", "ml.training.distributed"]:
        raise SystemExit(f"faulty_rank: expected -m ml.training.distributed, got {args[:2]}")
    rank = int(args[args.index("--local-rank") + 1])
    spec = json.loads(Path(args[2]).read_text())

    from ml.training import loop

    seed_epoch = loop._seed_epoch

    def at_epoch_start(seed: int, epoch: int) -> None:  # `epoch` counts from 0 here
        if rank == fault["rank"] and epoch + 1 == fault["epoch"]:
            if fault["action"] == "kill":
                mark = Path(fault["mark"])
                if not mark.exists():
                    mark.write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
            elif fault["action"] == "wait_for_stop":
                deadline = time.monotonic() + 60
                while not Path(spec["stop_file"]).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
        seed_epoch(seed, epoch)

    loop._seed_epoch = at_epoch_start
    sys.argv = ["ml.training.distributed", *args[2:]]
    runpy.run_module("ml.training.distributed", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
