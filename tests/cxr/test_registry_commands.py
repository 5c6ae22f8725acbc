"""`cxr db wait`: the init step of containers that must not start before the migration has run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cxr.cli import main
from registry.migrate import head_revision, upgrade
from tests.integration.stack import REPO_ROOT


def test_it_gives_up_with_a_clear_error_on_a_registry_left_behind(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with pytest.raises(SystemExit) as stopped:
        main(["db", "wait", "--url", url, "--timeout", "0.5", "--interval", "0.1"])
    message = str(stopped.value.code)
    assert message.startswith("error: ") and f"not at schema {head_revision(url)}" in message
    assert "cxr db upgrade" in message


def test_it_returns_once_the_migration_has_run_elsewhere(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    waiting = subprocess.Popen([sys.executable, "-m", "cxr", "db", "wait", "--url", url, "--interval", "0.2"],
                               cwd=REPO_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, text=True)
    try:
        first = waiting.stdout.readline()  # it has looked once and is waiting
        assert "waiting for" in first, first
        assert waiting.poll() is None
        upgrade(url)
        assert waiting.wait(timeout=60) == 0
        assert f"schema at {head_revision(url)}" in waiting.stdout.read()
    finally:
        waiting.kill()
        waiting.wait()
