"""`cxr serve`'s supervisor with real child processes, the worker's command line, and the environment
`cxr api` starts uvicorn with."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cxr.service_commands import MALLOC_ENV, api_argv, api_env, supervise, worker_argv
from registry.migrate import upgrade
from tests.waiting import SETTLE_SECONDS, START_SECONDS
from worker.settings import WorkerSettings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_when_one_child_dies_the_others_are_stopped_and_its_status_returned():
    started = time.monotonic()
    status = supervise({"api": SLEEPER, "worker": [sys.executable, "-c", "import sys; sys.exit(3)"]}, grace=5)
    assert status == 3 and time.monotonic() - started < 20


def test_a_child_that_exits_cleanly_still_counts_as_a_failure():
    assert supervise({"api": SLEEPER, "worker": [sys.executable, "-c", "pass"]}, grace=5) == 1


def test_sigterm_is_forwarded_and_a_stubborn_child_is_killed_after_the_grace_period(tmp_path):
    ready = tmp_path / "ignoring"  # the stubborn child writes it once SIGTERM is ignored
    stubborn = ("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")
    code = ("import sys; from cxr.service_commands import supervise; "
            f"sys.exit(supervise({{'api': {SLEEPER!r}, 'worker': [sys.executable, '-c', {stubborn!r}]}}, grace=1))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_SECONDS
    while not ready.exists():  # both children started (the api one first), and the worker ignores SIGTERM
        assert proc.poll() is None and time.monotonic() < deadline, proc.returncode
        time.sleep(0.05)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - started < 15
    assert "worker did not stop within 1 s; killing it" in err and "api did not stop" not in err


def _signal_recorder(path: Path) -> list[str]:
    """A child that writes its process group, then the first SIGINT/SIGTERM it gets, and exits 0. Each file
    appears whole (written beside it, then renamed), so a test that waits for it to exist reads all of it."""
    code = (f"import os, pathlib, signal, sys, time; p = pathlib.Path({str(path)!r}); "
            "tmp = p.with_suffix('.tmp'); tmp.write_text(str(os.getpgrp())); tmp.replace(p)\n"
            "def stop(signum, frame):\n"  # written whole, then renamed: a reader never sees it half-written
            "    tmp.write_text(signal.Signals(signum).name); tmp.replace(p.with_suffix('.signal')); sys.exit(0)\n"
            "signal.signal(signal.SIGINT, stop); signal.signal(signal.SIGTERM, stop); time.sleep(60)")
    return [sys.executable, "-c", code]


def test_ctrl_c_at_a_terminal_reaches_each_child_once_through_the_supervisor(tmp_path):
    """A terminal's Ctrl-C is SIGINT to its foreground process group: the children, each in a group of its own,
    get only the one SIGINT the supervisor forwards (two would stop Celery cold and skip uvicorn's shutdown)."""
    code = ("import sys; from cxr.service_commands import supervise; "
            f"sys.exit(supervise({{'api': {_signal_recorder(tmp_path / 'api')!r}, "
            f"'worker': {_signal_recorder(tmp_path / 'worker')!r}}}, grace=10))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # as a shell runs a foreground job: a group of its own
    try:
        groups = {name: _pid_in(tmp_path / name) for name in ("api", "worker")}
        assert proc.pid not in groups.values() and len(set(groups.values())) == 2
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    for name in ("api", "worker"):
        assert (tmp_path / name).with_suffix(".signal").read_text() == "SIGINT"


def test_children_are_stopped_when_the_supervisor_dies_without_stopping_them(tmp_path):
    code = ("import sys; from cxr.service_commands import supervise; "
            f"sys.exit(supervise({{'api': {_signal_recorder(tmp_path / 'api')!r}}}, grace=10))")
    proc = subprocess.Popen([sys.executable, "-c", code])
    _pid_in(tmp_path / "api")
    proc.kill()  # SIGKILL: the supervisor forwards nothing
    proc.wait(timeout=30)
    recorded, deadline = (tmp_path / "api").with_suffix(".signal"), time.monotonic() + SETTLE_SECONDS
    while not recorded.exists():
        assert time.monotonic() < deadline, "the child was left running"
        time.sleep(0.05)
    assert recorded.read_text() == "SIGTERM"


def _pid_in(path: Path, other_than: int | None = None, timeout: float = 60) -> int:
    """The pid a child wrote to `path`, once it is there (and not `other_than`)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if text.strip() and int(text) != other_than:
            return int(text)
        assert time.monotonic() < deadline, f"no new pid in {path} within {timeout} s"
        time.sleep(0.05)


def test_a_worker_that_dies_is_started_again_with_a_backoff_and_the_api_keeps_running(tmp_path):
    def writes_its_pid(name: str) -> list[str]:
        path = tmp_path / name
        code = (f"import os, pathlib, time; p = pathlib.Path({str(path)!r}); tmp = p.with_suffix('.tmp'); "
                "tmp.write_text(str(os.getpid())); tmp.replace(p); time.sleep(60)")
        return [sys.executable, "-c", code]

    code = ("import sys; from cxr.service_commands import Backoff, supervise; "
            f"sys.exit(supervise({{'api': {writes_its_pid('api')!r}, 'worker': {writes_its_pid('worker')!r}}}, "
            "grace=5, restart={'worker'}, backoff=Backoff(first=0.5)))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        api, first = _pid_in(tmp_path / "api"), _pid_in(tmp_path / "worker")
        os.kill(first, signal.SIGKILL)
        second = _pid_in(tmp_path / "worker", other_than=first)
        os.kill(second, signal.SIGKILL)  # again at once: the backoff doubles
        third = _pid_in(tmp_path / "worker", other_than=second)
        assert proc.poll() is None and third not in (first, second)
        os.kill(api, 0)  # the api child was never stopped
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"worker (pid {first}) exited with status -9; starting it again in 0.5 s" in err
    assert f"worker (pid {second}) exited with status -9; starting it again in 1 s" in err
    assert f"worker started again (pid {third})" in err and "api" not in err


def test_the_worker_never_uses_a_forking_pool_and_consumes_both_queues():
    argv = worker_argv(WorkerSettings(queue_namespace="ns"))
    assert argv[argv.index("--pool") + 1] == "solo" and argv[argv.index("--concurrency") + 1] == "1"
    assert argv[argv.index("--queues") + 1] == "ns.training,ns.evaluation"
    assert {"--without-gossip", "--without-mingle"} <= set(argv)  # the SQLAlchemy transport has no fan-out
    threads = worker_argv(WorkerSettings(worker_pool="threads", worker_concurrency=4), queues="training")
    assert threads[threads.index("--concurrency") + 1] == "4" and threads[threads.index("--queues") + 1] == "training"


def test_the_api_process_starts_with_the_malloc_settings_unless_the_environment_has_its_own():
    assert api_env({"PATH": "/bin"}) == {"PATH": "/bin", **MALLOC_ENV}
    own = {"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "0"}
    assert api_env(own) == own  # an operator's own malloc tuning is left alone, not mixed with ours


def test_cxr_api_execs_uvicorn_with_the_malloc_settings_in_its_environment(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(CXR_DATABASE_URL=url, CXR_ARTIFACT_ROOT=str(tmp_path / "artifacts"), CXR_HOST="127.0.0.1",
               CXR_PORT=str(port), CXR_RUNTIME_CANDIDATES="[]")
    proc = subprocess.Popen([sys.executable, "-m", "cxr", "api"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert proc.poll() is None, "cxr api exited"
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{proc.pid}/environ").read_text().split("\0") if "=" in item)
        assert "uvicorn" in Path(f"/proc/{proc.pid}/cmdline").read_text()  # the same process, exec'd
        assert {k: environ.get(k) for k in MALLOC_ENV} == MALLOC_ENV
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_cxr_api_logs_each_request_with_its_id():
    from app.settings import AppSettings

    argv = api_argv(AppSettings())
    config = Path(argv[argv.index("--log-config") + 1])
    assert config.is_file()
    # uvicorn applies the file with dictConfig; an access line as uvicorn writes it, outside any request
    code = ("import json, logging, logging.config, sys; "
            f"logging.config.dictConfig(json.load(open({str(config)!r}))); "
            "logging.getLogger('uvicorn.access').info('%s - \"%s %s HTTP/%s\" %d', '10.0.0.1:5', 'GET', "
            "'/x', '1.1', 200); logging.getLogger('app.serving').info('loaded')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    assert '"GET /x HTTP/1.1" 200 OK request_id=-' in done.stdout
    assert "app.serving [-] loaded" in done.stderr
