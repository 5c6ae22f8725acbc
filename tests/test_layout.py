"""The house rules hold: every import-linter contract in pyproject.toml is kept, and every top-level package is
named by at least one contract (a new package cannot slip in without saying what it may import)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept():
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_top_level_package_is_named_by_a_contract():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    packages = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}
    assert packages == set(config["root_packages"]), packages ^ set(config["root_packages"])
    named = set()
    for contract in config["contracts"]:
        for key in ("source_modules", "modules", "forbidden_modules"):
            named |= {m.split(".")[0] for m in contract.get(key, [])}
    assert packages <= named, packages - named
