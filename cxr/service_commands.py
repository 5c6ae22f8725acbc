"""Service commands: `cxr serve` (API and worker together), `cxr api`, `cxr worker`, `cxr bootstrap`.

`make run` is `cxr db upgrade`, `cxr bootstrap`, `cxr serve`: migrations and first-start imports are
explicit steps, never side effects of starting the API.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import AppSettings
    from worker.settings import WorkerSettings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the API and a Celery worker, and watch over both")
    p.add_argument("--no-worker", action="store_true", help="only the API (workers run elsewhere)")
    p.add_argument("--grace", type=float, default=15.0,
                   help="seconds the processes get to stop before they are killed (a killed training job "
                        "resumes from its last checkpoint)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("api", help="run the API server (uvicorn; host, port, workers and threads from settings)")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="run a Celery worker for training and evaluation jobs")
    p.add_argument("--queues", help="comma-separated queue names (default: training and evaluation)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("bootstrap", help="register the shipped datasets, import the shipped models and make the "
                                         "first admin API key (idempotent)")
    p.add_argument("--datasets", type=Path, help="dataset manifest (default data/datasets.toml)")
    p.add_argument("--models", type=Path, help="model manifest (default models/manifest.toml)")
    p.set_defaults(func=cmd_bootstrap)


# --- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from app.settings import AppSettings

    settings = AppSettings()
    _require_current_schema(settings.database_url)
    python = sys.executable
    commands = {"api": [python, "-m", "cxr", "api"]}
    if not args.no_worker:
        commands["worker"] = [python, "-m", "cxr", "worker"]
    print(f"API on http://{settings.host}:{settings.port} (docs at /docs)"
          + ("" if args.no_worker else f"; a worker on {_redact(settings.broker_url)}") + "; Ctrl-C stops",
          flush=True)
    # a dead worker is started again (its job resumes from its checkpoint) while the API keeps serving
    return supervise(commands, grace=args.grace, restart={"worker"})


@dataclass
class Backoff:
    """Seconds to wait before restarting a child: `first`, doubling up to `most`; back to `first` once a
    child has run `stable` seconds (a crash after a long healthy run is not a crash loop)."""

    first: float = 1.0
    most: float = 60.0
    stable: float = 120.0

    def delay(self, previous: float | None, ran: float) -> float:
        if previous is None or ran >= self.stable:
            return self.first
        return min(self.most, previous * 2)


def supervise(commands: Mapping[str, Sequence[str]], *, grace: float = 15.0,
              env: Mapping[str, str] | None = None, poll: float = 0.2, restart: Collection[str] = (),
              backoff: Backoff | None = None) -> int:
    """Run the commands as child processes until SIGINT, SIGTERM or SIGHUP (forwarded to them, SIGHUP as
    SIGTERM; returns 0). A child named in `restart` that exits is started again after a backoff (logged on
    stderr); when any other one exits, the others are stopped and its status returned (1 if it was 0).

    Each child runs in a process group of its own, so a terminal's Ctrl-C (SIGINT to the foreground group)
    reaches the supervisor alone and each child gets exactly the one signal forwarded: a second one would
    make uvicorn skip the application's shutdown and Celery stop cold, ending a running training task. A
    child is sent SIGTERM by the kernel if the supervisor dies without forwarding (Linux's parent-death
    signal), so none is left behind."""
    backoff = backoff or Backoff()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    def start(name: str) -> subprocess.Popen:
        started[name] = time.monotonic()
        # preexec_fn: the supervisor starts children from its one thread (nothing else runs to hold a lock)
        return subprocess.Popen(list(commands[name]), env=dict(env) if env is not None else None,  # noqa: PLW1509
                                process_group=0, preexec_fn=functools.partial(_terminated_with, os.getpid()))

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    started: dict[str, float] = {}
    children = {name: start(name) for name in commands}
    delays: dict[str, float] = {}  # the last backoff of each restarted child
    due: dict[str, float] = {}  # children waiting to be started again: when
    failed: tuple[str, int] | None = None
    try:
        while not received and failed is None:
            now = time.monotonic()
            for name, proc in children.items():
                if received:  # a stop was asked: a child's exit from here on is part of it, not a crash
                    break
                if name in due or proc.poll() is None:
                    continue
                if name not in restart:
                    failed = (name, proc.returncode)
                    break
                delays[name] = backoff.delay(delays.get(name), now - started[name])
                due[name] = now + delays[name]
                print(f"{name} (pid {proc.pid}) exited with status {proc.returncode}; starting it again in "
                      f"{delays[name]:g} s", file=sys.stderr, flush=True)
            for name, when in list(due.items()):
                if failed is None and not received and time.monotonic() >= when:
                    del due[name]
                    children[name] = start(name)
                    print(f"{name} started again (pid {children[name].pid})", file=sys.stderr, flush=True)
            time.sleep(poll)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop(children, signal.SIGINT if received[:1] == [signal.SIGINT] else signal.SIGTERM, grace)
    if failed is not None:
        name, status = failed
        print(f"{name} exited with status {status}; stopped the others", file=sys.stderr, flush=True)
        return status or 1
    return 0


def _terminated_with(parent: int) -> None:
    """In a child before it runs its command: SIGTERM when `parent`, which started it, dies (prctl
    PR_SET_PDEATHSIG; Linux), or at once if it died already. A child in a group of its own is otherwise not
    stopped with its parent."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _stop(children: Mapping[str, subprocess.Popen], signum: int, grace: float) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signum)
    deadline = time.monotonic() + grace
    for name, proc in children.items():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within {grace:.0f} s; killing it", file=sys.stderr, flush=True)
            proc.kill()
            proc.wait()


def _require_current_schema(url: str) -> None:
    from registry.db import make_engine
    from registry.migrate import schema_is_current

    engine = make_engine(url)
    try:
        if not schema_is_current(engine):
            raise SystemExit(f"error: the registry at {_redact(url)} is not at the newest schema: "
                             "run `cxr db upgrade` first (make run does)")
    finally:
        engine.dispose()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url.removeprefix("sqla+")).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a broker URL SQLAlchemy does not parse (redis://)
        return url.split("@")[-1]


# --- api ---------------------------------------------------------------------------------------


# httptools with limits on the request head's size, header count and time (431 / 408; see app.api.protocol)
HTTP_PROTOCOL = "app.api.protocol:LimitedHttpToolsProtocol"


def api_argv(settings: AppSettings) -> list[str]:
    """uvicorn's arguments from the API settings (the container command and `cxr serve` both use them); its
    logging names each request's id (`app/logging.json`, `app.api.request_id`)."""
    import app

    log_config = Path(app.__file__).with_name("logging.json")
    return ["-m", "uvicorn", "--factory", "app.main:create_app", "--host", settings.host, "--port",
            str(settings.port), "--workers", str(settings.api_workers), "--http", HTTP_PROTOCOL,
            "--timeout-graceful-shutdown", str(settings.shutdown_grace_seconds), "--no-server-header",
            "--log-config", str(log_config)]


# glibc malloc settings for the API process, read by glibc when a process starts (hence set for the exec
# below, not in this one). By default an upload's large buffers (the 1024 px PNG decoded and resized: ~7 MB)
# are mapped fresh from the kernel and given back on every request, so each request faults those pages in
# again: ~1,700 minor page faults per decode on a pool thread, none with these settings, and the 28 px
# model's /predict ~4-6 ms faster on this machine. Blocks under 64 MB come from the heap, and up to 256 MB of
# free heap is kept rather than trimmed (resident memory stays flat: see docs/performance.md). A variable
# already in the environment wins.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}


def api_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The API process's environment: `environ` with `MALLOC_ENV` where it sets neither of them."""
    if any(name in environ for name in MALLOC_ENV):
        return dict(environ)
    return {**environ, **MALLOC_ENV}


def cmd_api(args: argparse.Namespace) -> int:
    from app.settings import AppSettings

    settings = AppSettings()
    _require_current_schema(settings.database_url)
    # exec: uvicorn becomes this process, so a container's SIGTERM reaches it directly
    os.execve(sys.executable, [sys.executable, *api_argv(settings)], api_env(os.environ))
    return 0  # not reached


# --- worker --------------------------------------------------------------------------------------


def worker_argv(s: WorkerSettings, queues: str | None = None) -> list[str]:
    """`celery worker` arguments from the worker settings: never a forking pool, no broadcast features
    (kombu's SQLAlchemy transport has no fan-out)."""
    from registry.queue import queue_names

    return ["worker", "--loglevel", s.worker_log_level, "--pool", s.worker_pool,
            "--concurrency", str(s.worker_concurrency if s.worker_pool == "threads" else 1),
            "--queues", queues or ",".join(queue_names(s).values()),
            "--hostname", f"cxr-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.celery_app import app, settings

    app.worker_main(worker_argv(settings, args.queues))
    return 0


# --- bootstrap -----------------------------------------------------------------------------------


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from app.services.bootstrap import (
        DATASETS_MANIFEST,
        MODELS_MANIFEST,
        ensure_admin_key,
        import_shipped_models,
        register_shipped_datasets,
    )
    from app.settings import BootstrapSettings
    from registry.artifacts import artifact_store
    from registry.db import Database

    settings = BootstrapSettings()
    _require_current_schema(settings.database_url)
    configured = settings.bootstrap_admin_key.get_secret_value() if settings.bootstrap_admin_key else None
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            lines = register_shipped_datasets(session, args.datasets or DATASETS_MANIFEST, settings.data_roots)
            lines += import_shipped_models(session, artifact_store(settings.artifact_root),
                                           args.models or MODELS_MANIFEST)
            lines += ensure_admin_key(session, configured)
    finally:
        db.dispose()
    print("\n".join(lines))
    return 0
