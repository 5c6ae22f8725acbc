"""An exponential moving average of a model's weights, kept beside the trained model.

After every optimiser step each floating-point parameter and buffer (BatchNorm's running statistics included)
moves towards the trained model's: `avg = d * avg + (1 - d) * current`, with `d` the decay. Integer buffers
(BatchNorm's step counter) are copied. Early on, when the average still holds mostly the random start, the
decay is held lower, `min(decay, (1 + n) / (10 + n))` after `n` updates, so the average follows the first
epochs closely and settles as training does.

Averaging the weights of the last few thousand steps lands in a flatter region of the loss than the last
step alone, which is where a model tends to hold up better on data collected apart from its training set
(Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018). The average
is what training validates, keeps as its best checkpoint and ships; the trained model only feeds it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The averaged copy of `model` (`module`, always in eval mode) and the number of updates it has seen."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must lie in (0, 1); got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards `model` (call after each optimiser step)."""
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        current = model.state_dict()
        for name, avg in self.module.state_dict().items():
            value = current[name].detach()
            if avg.is_floating_point():
                avg.mul_(d).add_(value.to(avg.dtype), alpha=1 - d)
            else:
                avg.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "state_dict": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.module.load_state_dict(state["state_dict"])
