"""`cxr serve`'s supervisor with real child processes, and the worker's command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from cxr.service_commands import supervise, worker_argv
from worker.settings import WorkerSettings

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_when_one_child_dies_the_others_are_stopped_and_its_status_returned():
    started = time.monotonic()
    status = supervise({"api": SLEEPER, "worker": [sys.executable, "-c", "import sys; sys.exit(3)"]}, grace=5)
    assert status == 3 and time.monotonic() - started < 20


def test_a_child_that_exits_cleanly_still_counts_as_a_failure():
    assert supervise({"api": SLEEPER, "worker": [sys.executable, "-c", "pass"]}, grace=5) == 1


def test_sigterm_is_forwarded_and_a_stubborn_child_is_killed_after_the_grace_period(tmp_path):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    code = ("import sys; from cxr.service_commands import supervise; "
            f"sys.exit(supervise({{'api': {SLEEPER!r}, 'worker': [sys.executable, '-c', {stubborn!r}]}}, grace=1))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # let it start both children
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - started < 15
    assert "worker did not stop within 1 s; killing it" in err and "api did not stop" not in err


def test_the_worker_never_uses_a_forking_pool_and_consumes_both_queues():
    argv = worker_argv(WorkerSettings(queue_namespace="ns"))
    assert argv[argv.index("--pool") + 1] == "solo" and argv[argv.index("--concurrency") + 1] == "1"
    assert argv[argv.index("--queues") + 1] == "ns.training,ns.evaluation"
    assert {"--without-gossip", "--without-mingle"} <= set(argv)  # the SQLAlchemy transport has no fan-out
    threads = worker_argv(WorkerSettings(worker_pool="threads", worker_concurrency=4), queues="training")
    assert threads[threads.index("--concurrency") + 1] == "4" and threads[threads.index("--queues") + 1] == "training"
