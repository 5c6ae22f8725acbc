"""The learned part of the input check: a tiny CNN that tells an upright chest radiograph from anything else.

`GateNet` sees the image squashed to 64x64 grey and stretched between its 1st and 99th percentiles, so bit
depth, windowing and brightness do not matter, and answers one of `GATE_CLASSES`: a chest X-ray shown the
usual way, an inverted (negative) one, a rotated one, or something else. The score is the probability of the
first; `InputGate` flags an image whose score is under the threshold chosen on validation images (stored with
the weights) or that fails a cheap check (`ml.trust.checks`). It costs about a millisecond on one CPU core
and does not depend on which model is served. Weights: `ml/trust/gate.pt`, from `python -m tools.gate train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ml.errors import ModelError
from ml.trust.checks import cheap_reasons

GATE_SIZE = 64
GATE_CLASSES = ("chest_xray", "inverted", "rotated", "other")
DEFAULT_WEIGHTS = Path(__file__).with_name("gate.pt")
_REASONS = {
    "inverted": "looks like an inverted (negative) radiograph: bones dark, lungs bright",
    "rotated": "looks rotated: the chest is not upright",
    "other": "does not look like a chest X-ray",
}


def gate_input(image: np.ndarray) -> np.ndarray:
    """(H, W) grey in [0, 1] to the gate's (64, 64) float32 input in [0, 1]: squashed (area resize), then
    stretched between its 1st and 99th percentiles."""
    small = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (GATE_SIZE, GATE_SIZE),
                       interpolation=cv2.INTER_AREA)
    low, high = np.percentile(small, [1, 99])
    if high - low < 1e-6:
        return np.zeros_like(small)
    return np.clip((small - low) / (high - low), 0.0, 1.0).astype(np.float32)


class GateNet(nn.Module):
    """Three conv blocks (16-32-64 channels; the first with stride 2, 64 -> 4 px) and a linear layer over the
    4x4 map, so where things are (the rotation) still counts; about 28k parameters."""

    def __init__(self, classes: int = len(GATE_CLASSES)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in ((1, 16, 2), (16, 32, 1), (32, 64, 1)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 64, 64) in [0, 1] to logits (B, classes)."""
        return self.classifier(self.features(x * 2.0 - 1.0))


@dataclass(frozen=True)
class InputCheck:
    """What the gate says about one image: flagged when any reason is given."""

    in_distribution: bool
    score: float  # the gate's probability that this is a chest X-ray shown the usual way
    threshold: float
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"in_distribution": self.in_distribution, "score": self.score, "threshold": self.threshold,
                "reasons": list(self.reasons)}


class InputGate:
    """The cheap checks and `GateNet` together; thread-safe (inference only)."""

    def __init__(self, net: GateNet, threshold: float, meta: dict[str, Any] | None = None) -> None:
        self.net, self.threshold, self.meta = net.eval(), float(threshold), meta or {}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS) -> InputGate:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"input gate weights not found: {path} (train them: python -m tools.gate train)") from None
        net = GateNet(len(saved.get("classes", GATE_CLASSES)))
        net.load_state_dict(saved["state_dict"])
        return cls(net, saved["threshold"], {k: v for k, v in saved.items() if k != "state_dict"})

    @torch.inference_mode()
    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities (B, classes) for gate inputs (B, 64, 64)."""
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[:, None]
        return torch.softmax(self.net(x), dim=1).numpy()

    def check(self, image: np.ndarray, colour: float | None = None, size: tuple[int, int] | None = None
              ) -> InputCheck:
        """Check one decoded image (H, W in [0, 1]); `colour`: `ml.trust.colour_fraction` of its file; `size`:
        the file's (height, width) when the image was decoded reduced."""
        reasons = cheap_reasons(image, colour, size)
        probs = self.scores(gate_input(image)[None])[0]
        score = float(probs[0])
        if score < self.threshold:
            guess = GATE_CLASSES[1 + int(np.argmax(probs[1:]))]
            reasons.append(f"{_REASONS[guess]} (gate score {score:.2f} < {self.threshold:.2f})")
        return InputCheck(not reasons, round(score, 4), round(self.threshold, 4), reasons)
