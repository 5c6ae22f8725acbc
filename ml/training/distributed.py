"""Data-parallel training: `launch` starts one process per device running `fit`, and watches them.

The ranks are started as fresh interpreters (never forked: the caller may hold CUDA) that inherit the
caller's environment untouched and are told their rank, the world size and the rendezvous port on their
command line and in the spec file (`init_process_group` over TCP on 127.0.0.1), with NCCL on GPUs and gloo
on the CPU. `fit` does the rest (see
`ml.training.loop`): each rank trains on its share of every global batch, metrics are reduced across
ranks, rank 0 alone writes the run folder.

Rank 0 sends what its reporter hears to the launcher as JSON lines on a pipe; the launcher calls the
caller's reporter with them, in the caller's process (so a worker's registry writes and lease stay where
they are). A stop the caller's reporter asks for reaches rank 0 as a file in the run folder's `.ddp/`;
rank 0 shares it with every rank at the next check, so all stop at the same step.

A rank that dies (killed, crashed, out of memory) never leaves the others hanging: the launcher, polling
its children, stops the rest at once; the process group's timeout is the backstop for a rank that hangs
without dying. The launcher then starts all ranks again, resuming from the last checkpoint, up to
`restarts` times, and otherwise raises `TrainingFailed`. An error `fit` raises on purpose (a bad config, a
dataset problem) is raised again in the caller, not retried. (Single host; docs/distributed.md says what
several hosts need.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch

from ml import errors
from ml.config import TrainConfig
from ml.errors import ConfigError, CXRError, TrainingCancelled
from ml.training.loop import FitResult, fit
from ml.training.reporter import Reporter

log = logging.getLogger(__name__)

EXIT_CANCELLED = 3
STOP_FILE = "stop"
REPORTER_EVENTS = ("on_start", "on_phase", "on_step", "on_epoch_end", "on_checkpoint", "on_evaluation")


class TrainingFailed(CXRError):
    """A rank died and the restarts were used up."""


class _RankDied(Exception):
    def __init__(self, rank: int, how: str) -> None:
        super().__init__(f"rank {rank} {how}")
        self.rank, self.how = rank, how


def launch(
    config: TrainConfig,
    run_dir: str | Path,
    reporter: Reporter | None = None,
    resume: bool = True,
    *,
    cache_dir: str | Path | None = None,
    timeout_s: float = 1800.0,
    restarts: int = 1,
    poll_s: float = 0.1,
) -> FitResult:
    """`fit(config, run_dir, ...)` on `config.params.devices` processes; the same result, from rank 0.

    `timeout_s` bounds every collective (a rank that hangs fails the group; the slowest legitimate wait is
    rank 0 building a split's prepared cache while the others wait: prepare it ahead with `cxr data prepare`
    for large sets). `restarts`: how many times dead ranks are replaced by a fresh start that resumes from
    the last checkpoint.
    """
    reporter = reporter or Reporter()
    run_dir = Path(run_dir)
    world = config.params.devices
    cuda = _uses_cuda(config.params.device)
    if cuda and torch.cuda.device_count() < world:
        raise ConfigError(f"{world} devices requested but this machine has {torch.cuda.device_count()} GPU(s)")
    if config.params.batch_size % world:
        raise ConfigError(f"batch_size {config.params.batch_size} must be a multiple of devices ({world}): "
                          "it is the global batch, split evenly across devices")
    control = run_dir / ".ddp"
    control.mkdir(parents=True, exist_ok=True)
    for attempt in range(restarts + 1):
        (control / STOP_FILE).unlink(missing_ok=True)
        spec = {"config": config.model_dump(mode="json"), "run_dir": str(run_dir), "resume": resume or attempt > 0,
                "cache_dir": str(cache_dir) if cache_dir is not None else None, "timeout_s": timeout_s,
                "world": world, "stop_file": str(control / STOP_FILE),
                # intra-op threads per rank: the cores shared out on the CPU, one beside a GPU
                "threads": 1 if cuda else max(1, (os.cpu_count() or 1) // world)}
        (control / "spec.json").write_text(json.dumps(spec))
        try:
            return _run_once(control, world, reporter, poll_s)
        except _RankDied as exc:
            if attempt == restarts:
                raise TrainingFailed(f"data-parallel training failed: {exc} (after {restarts} restart(s))") from None
            log.warning("%s; restarting all %d ranks from the last checkpoint (%d of %d restarts)", exc, world,
                        attempt + 1, restarts)
    raise AssertionError("unreachable")


def _uses_cuda(device: str) -> bool:
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_once(control: Path, world: int, reporter: Reporter, poll_s: float) -> FitResult:
    port = _free_port()
    read_fd, write_fd = os.pipe()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for rank in range(world):
            cmd = [sys.executable, "-m", "ml.training.distributed", str(control / "spec.json"),
                   "--local-rank", str(rank), "--port", str(port)]
            if rank == 0:
                cmd += ["--events-fd", str(write_fd)]
            procs.append(subprocess.Popen(cmd, pass_fds=(write_fd,) if rank == 0 else ()))
    except BaseException:
        _stop_all(procs)
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # only rank 0 holds it now: the pipe ends when rank 0 does
    (control / "ranks.json").write_text(json.dumps({str(r): p.pid for r, p in enumerate(procs)}))
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    reader = threading.Thread(target=_read_events, args=(read_fd, events), name="ddp-events", daemon=True)
    reader.start()
    result: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    stop_asked = False
    try:
        while True:
            result, failure = _dispatch(events, reporter, result, failure)
            if not stop_asked and reporter.should_stop():
                (control / STOP_FILE).touch()
                stop_asked = True
            codes = [p.poll() for p in procs]
            # a rank killed by a signal is the cause; the others then fail in their collectives
            dead = sorted(((r, c) for r, c in enumerate(codes) if c is not None and c not in (0, EXIT_CANCELLED)),
                          key=lambda rc: (rc[1] >= 0, rc[0]))
            if dead and failure is None:
                rank, code = dead[0]
                _stop_all(procs)
                reader.join(timeout=5)
                result, failure = _dispatch(events, reporter, result, failure)
                if failure is None:
                    raise _RankDied(rank, _how(code))
            if dead or all(c is not None for c in codes):
                break
            time.sleep(poll_s)
        _stop_all(procs)
        reader.join(timeout=10)
        result, failure = _dispatch(events, reporter, result, failure)
    finally:
        _stop_all(procs)
    if failure is not None:
        raise _rebuild(failure)
    if any(p.returncode == EXIT_CANCELLED for p in procs):
        raise TrainingCancelled("cancelled (data-parallel run stopped at a step check)")
    if result is None:
        raise _RankDied(0, "ended without a result")
    return FitResult(Path(result["run_dir"]), Path(result["model_path"]), result["device"], result["best_epoch"],
                     result["best_metric"], result["history"], result["report"])


def _how(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _stop_all(procs: list[subprocess.Popen[bytes]], grace_s: float = 10.0) -> None:
    """SIGTERM every rank still running, SIGKILL what is left after `grace_s`."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _read_events(fd: int, out: queue.Queue[dict[str, Any] | None]) -> None:
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            with contextlib.suppress(ValueError):
                out.put(json.loads(line))
    out.put(None)


def _dispatch(events: queue.Queue[dict[str, Any] | None], reporter: Reporter, result: dict[str, Any] | None,
              failure: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Hand rank 0's queued events to `reporter`; returns the result and failure seen so far."""
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return result, failure
        if event is None:
            continue
        kind, data = event["event"], event["data"]
        if kind == "result":
            result = data
        elif kind == "error":
            failure = data
        elif kind in REPORTER_EVENTS:
            if kind == "on_checkpoint":
                data["path"] = Path(data["path"])
            getattr(reporter, kind)(**data)


def _rebuild(failure: dict[str, Any]) -> Exception:
    """The error rank 0 raised on purpose, raised again here (its type when it is one of ours)."""
    kind = getattr(errors, failure["type"], None)
    if isinstance(kind, type) and issubclass(kind, CXRError):
        return kind(failure["message"])
    if failure["type"] == "FloatingPointError":
        return FloatingPointError(failure["message"])
    return TrainingFailed(f"rank 0 failed: {failure['type']}: {failure['message']}")


# --- one rank ------------------------------------------------------------------------------------


class _PipeReporter(Reporter):
    """Rank 0's reporter: every hook becomes a JSON line for the launcher; a stop is the launcher's file."""

    def __init__(self, fd: int | None, stop_file: Path) -> None:
        self.stream = os.fdopen(fd, "w", buffering=1) if fd is not None else None
        self.stop_file = stop_file

    def send(self, event: str, data: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.write(json.dumps({"event": event, "data": data}, default=_plain) + "\n")

    def on_start(self, **kw: Any) -> None:
        self.send("on_start", kw)

    def on_phase(self, **kw: Any) -> None:
        self.send("on_phase", kw)

    def on_step(self, **kw: Any) -> None:
        self.send("on_step", kw)

    def on_epoch_end(self, **kw: Any) -> None:
        self.send("on_epoch_end", kw)

    def on_checkpoint(self, **kw: Any) -> None:
        self.send("on_checkpoint", kw)

    def on_evaluation(self, **kw: Any) -> None:
        self.send("on_evaluation", kw)

    def should_stop(self) -> bool:
        return self.stop_file.exists()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        return value.tolist()
    return str(value)


def rank_main(argv: list[str] | None = None) -> int:
    """One rank: `python -m ml.training.distributed SPEC --local-rank N --port P [--events-fd FD]`: rank N of
    the spec's world, meeting the others on 127.0.0.1:P."""
    parser = argparse.ArgumentParser(prog="python -m ml.training.distributed")
    parser.add_argument("spec", type=Path)
    parser.add_argument("--local-rank", type=int, default=0)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events-fd", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s rank %(process)d %(name)s: %(message)s")
    spec = json.loads(args.spec.read_text())
    config = TrainConfig.model_validate(spec["config"])
    cuda = _uses_cuda(config.params.device)
    if cuda:
        torch.cuda.set_device(args.local_rank)
    torch.set_num_threads(spec["threads"])
    dist = torch.distributed
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                            rank=args.local_rank, world_size=spec["world"],
                            timeout=timedelta(seconds=spec["timeout_s"]))
    rank = dist.get_rank()
    reporter = _PipeReporter(args.events_fd if rank == 0 else None, Path(spec["stop_file"]))
    code = 0
    try:
        result = fit(config, spec["run_dir"], reporter, resume=spec["resume"], cache_dir=spec["cache_dir"])
        if rank == 0:
            reporter.send("result", {"run_dir": str(result.run_dir), "model_path": str(result.model_path),
                                     "device": result.device, "best_epoch": result.best_epoch,
                                     "best_metric": result.best_metric, "history": result.history,
                                     "report": result.report})
    except TrainingCancelled:
        code = EXIT_CANCELLED
    except (CXRError, FloatingPointError) as exc:  # raised on purpose: the launcher raises it in the caller
        traceback.print_exc()
        if rank == 0:
            reporter.send("error", {"type": type(exc).__name__, "message": str(exc)})
        code = 1
    except Exception:  # noqa: BLE001 - e.g. a peer died under a collective: the launcher restarts the ranks
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(rank_main())
