"""How `fit` tells the outside world what it is doing, and how the outside asks it to stop.

`fit` calls these hooks; the CLI implements them with progress bars, the Celery worker with registry
writes. Every hook has a no-op default, so an implementation overrides only what it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Reporter:
    def on_start(self, *, start_epoch: int, epochs: int, steps_per_epoch: int, device: str) -> None:
        """Training begins on `device`, or resumes after `start_epoch` finished epochs (0: from the start).

        Every `epoch` passed to the hooks below counts from 1, as metrics, checkpoints and reports do."""

    def on_phase(self, *, phase: str) -> None:
        """The run enters `phase`: 'training' (after `on_start`), then 'evaluating' (the best epoch, on
        validation and test data). Before the first call it is preparing (data, model)."""

    def on_step(self, *, epoch: int, step: int, steps: int, loss: float) -> None:
        """Step `step` of `steps` in `epoch` finished (both counting from 1)."""

    def on_epoch_end(self, *, epoch: int, metrics: dict[str, dict[str, float | None]]) -> None:
        """Metrics per split (`train`, `val`) for the finished epoch."""

    def on_checkpoint(self, *, path: Path, kind: str, epoch: int, metrics: dict[str, Any]) -> None:
        """A checkpoint was written; `kind` is 'last', 'best' or 'final'."""

    def on_evaluation(self, *, split: str, report: dict[str, Any]) -> None:
        """The final evaluation of the best model on `split`."""

    def should_stop(self) -> bool:
        """Checked every few steps; True makes `fit` raise `TrainingCancelled`."""
        return False


class Reporters(Reporter):
    """Fan one call out to several reporters."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def on_start(self, **kw: Any) -> None:
        for r in self.reporters:
            r.on_start(**kw)

    def on_phase(self, **kw: Any) -> None:
        for r in self.reporters:
            r.on_phase(**kw)

    def on_step(self, **kw: Any) -> None:
        for r in self.reporters:
            r.on_step(**kw)

    def on_epoch_end(self, **kw: Any) -> None:
        for r in self.reporters:
            r.on_epoch_end(**kw)

    def on_checkpoint(self, **kw: Any) -> None:
        for r in self.reporters:
            r.on_checkpoint(**kw)

    def on_evaluation(self, **kw: Any) -> None:
        for r in self.reporters:
            r.on_evaluation(**kw)

    def should_stop(self) -> bool:
        return any(r.should_stop() for r in self.reporters)
