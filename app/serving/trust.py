"""The input gate as serving applies it: every decoded upload is checked (`ml.trust`), and with
`CXR_INPUT_GATE=reject` a flagged one refuses its request (422 `not_a_chest_xray`, the reasons in `details`)."""

from __future__ import annotations

import logging

import numpy as np

from app.serving.errors import NotAChestXray
from app.serving.inputs import Upload
from ml.errors import ImageError
from ml.trust import InputCheck, InputGate, colour_fraction

log = logging.getLogger(__name__)


class InputGuard:
    def __init__(self, mode: str, gate: InputGate | None = None) -> None:
        self.mode = mode
        self.gate = gate or InputGate.load()

    def check(self, upload: Upload, image: np.ndarray, size: tuple[int, int] | None = None) -> InputCheck:
        """The check of one decoded upload (`size`: its height and width when `image` was decoded reduced);
        raises `NotAChestXray` when flagged in reject mode. Blocking (about 0.5-1 ms of one core, more for a
        colour file): call it on the pool."""
        try:
            colour = colour_fraction(upload.data)
        except (ImageError, OSError, ValueError):  # decoded once already; a header the probe dislikes is no reason
            colour = None
        check = self.gate.check(image, colour, size)
        if not check.in_distribution:
            log.info("input gate flags '%s': %s", upload.name, "; ".join(check.reasons))
            if self.mode == "reject":
                raise NotAChestXray(
                    f"'{upload.name}' does not look like a chest X-ray: {'; '.join(check.reasons)}",
                    details=[{"file": upload.name, **check.as_dict()}],
                )
        return check
