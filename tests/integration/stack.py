"""Real processes for end-to-end tests: the API under uvicorn, `cxr worker`, `cxr serve`, each a child
process with its output in a log file, and a small HTTP client that waits for jobs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from cxr.service_commands import HTTP_PROTOCOL

REPO_ROOT = Path(__file__).resolve().parents[2]

# Test speed: short leases and sweeps so a dead worker's job is taken over in seconds (a heartbeat every
# second: a busy machine may delay one by seconds without losing the lease; the cancel flag is read every
# half second between them, as in production), progress written often so it can be watched, one torch
# thread per process (the CI machine has two cores).
FAST_WORKER_ENV = {"CXR_LEASE_SECONDS": "6", "CXR_HEARTBEAT_SECONDS": "1", "CXR_SWEEP_SECONDS": "1",
                   "CXR_UNSENT_AFTER_SECONDS": "2", "CXR_PROGRESS_SECONDS": "0.1", "OMP_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1"}

# The admin key the stacks are bootstrapped with (CXR_BOOTSTRAP_ADMIN_KEY) and their clients send.
ADMIN_KEY = "cxr_testadmn_integration-tests-admin-key"

# A short run on real PneumoniaMNIST: 8 steps per epoch
QUICK_PARAMS = {"batch_size": 32, "max_train_samples": 256, "max_eval_samples": 128, "lr": 2e-3,
                "cancel_check_every": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    """A child process whose output goes to `log`."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=self._fh,
                                     stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no '{text}' within {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return self.proc.returncode


def cxr(args: list[str], env: Mapping[str, str], timeout: float = 300) -> str:
    """Run a `cxr` command to completion; its output, or an assertion error with it."""
    done = subprocess.run([sys.executable, "-m", "cxr", *args], cwd=REPO_ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"cxr {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start_worker(env: Mapping[str, str], log: Path) -> Child:
    return Child("worker", [sys.executable, "-m", "cxr", "worker"], {**FAST_WORKER_ENV, **env}, log)


def start_api(env: Mapping[str, str], port: int, log: Path) -> Child:
    argv = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--http", HTTP_PROTOCOL]
    return Child("api", argv, env, log)


def wait_until_ready(client: httpx.Client, timeout: float, *children: Child) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            if child.proc.poll() is not None:
                raise AssertionError(f"{child.name} exited ({child.proc.returncode}):\n{child.output()[-3000:]}")
        try:
            if client.get("/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the API was not ready within {timeout} s")
        time.sleep(0.3)


def watch_job(client: httpx.Client, location: str, until: Callable[[dict[str, Any]], bool], timeout: float,
              poll: float = 0.1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll a job until `until(job)`; returns it and every distinct state seen on the way."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location).json()
        state = {"status": job["status"], **job["progress"]}
        if not seen or seen[-1] != state:
            seen.append(state)
        if until(job):
            return job, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"job {location} did not get there within {timeout} s; last: {job}")
        time.sleep(poll)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")
