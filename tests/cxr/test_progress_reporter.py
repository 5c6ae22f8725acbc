"""`cxr train`'s progress reporter takes every hook `fit` calls (new hooks default to Reporter's no-ops)."""

from __future__ import annotations

import inspect

from cxr.ml_commands import _ProgressReporter
from ml.training.reporter import Reporter


def test_the_cli_reporter_answers_every_reporter_hook(capsys) -> None:
    reporter = _ProgressReporter(quiet=True)
    hooks = [name for name, _ in inspect.getmembers(Reporter, inspect.isfunction) if name.startswith("on_")]
    assert "on_phase" in hooks
    for name in hooks:
        assert callable(getattr(reporter, name))
    reporter.on_phase(phase="training")  # `cxr train` died here once: AttributeError
    reporter.on_start(start_epoch=0, epochs=1, steps_per_epoch=2, device="cpu")
    assert "training on cpu" in capsys.readouterr().err
