"""The learned part of the input check: a tiny CNN that tells an upright chest radiograph from anything else.

`GateNet` sees the image squashed to 64x64 grey and stretched between its 1st and 99th percentiles, so bit
depth, windowing and brightness do not matter, and answers one of `GATE_CLASSES`: a chest X-ray shown the
usual way, an inverted (negative) one, a rotated one, or something else. The score is the probability of the
first; `InputGate` flags an image whose score is under the threshold chosen on validation images (stored with
the weights) or that fails a cheap check (`ml.trust.checks`). It does not depend on which model is served.
Weights: `ml/trust/gate.pt`, from `python -m tools.gate train`.

The network runs in ONNX Runtime when it is installed (the API's extra): exported once when the gate is
built, BatchNorm folded into the convolutions by ONNX Runtime's graph optimisation, one thread; about 0.08 ms
per image against 0.55 ms in eager PyTorch, whose per-operator overhead dominates so small a network. Its
probabilities stay within `RUNTIME_TOLERANCE` of eager PyTorch's (checked when the gate is built; the
eager module is used otherwise and where ONNX Runtime is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ml.errors import ModelError
from ml.runtime import export_onnx, onnx_runtime
from ml.trust.checks import cheap_reasons
from ml.trust.percentiles import percentiles

log = logging.getLogger(__name__)
GATE_SIZE = 64
GATE_CLASSES = ("chest_xray", "inverted", "rotated", "other")
DEFAULT_WEIGHTS = Path(__file__).with_name("gate.pt")
_REASONS = {
    "inverted": "looks like an inverted (negative) radiograph: bones dark, lungs bright",
    "rotated": "looks rotated: the chest is not upright",
    "other": "does not look like a chest X-ray",
}
RUNTIME_TOLERANCE = 1e-5  # the most ONNX Runtime's probabilities may differ from eager PyTorch's


def gate_input(image: np.ndarray) -> np.ndarray:
    """(H, W) grey in [0, 1] to the gate's (64, 64) float32 input in [0, 1]: squashed (area resize), then
    stretched between its 1st and 99th percentiles."""
    small = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (GATE_SIZE, GATE_SIZE),
                       interpolation=cv2.INTER_AREA)
    low, high = percentiles(small, (1, 99))
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
    """The cheap checks and `GateNet` together; thread-safe (inference only). `runtime`: "onnxruntime" (where
    installed; else eager) or "eager"."""

    def __init__(self, net: GateNet, threshold: float, meta: dict[str, Any] | None = None,
                 runtime: str = "onnxruntime") -> None:
        self.net, self.threshold, self.meta = net.eval(), float(threshold), meta or {}
        self._probabilities = _eager(self.net)
        self.runtime = "eager"
        if runtime == "onnxruntime":
            try:
                session = _onnxruntime(self.net)
            except Exception as exc:  # noqa: BLE001 - a runtime that cannot be built leaves the exact one
                log.warning("input gate: ONNX Runtime could not be built (%s); using eager PyTorch", exc)
                session = None
            if session is not None:
                self._probabilities, self.runtime = session, "onnxruntime"
        elif runtime != "eager":
            raise ValueError(f"unknown gate runtime '{runtime}' (onnxruntime or eager)")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_WEIGHTS, runtime: str = "onnxruntime") -> InputGate:
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelError(f"input gate weights not found: {path} (train them: python -m tools.gate train)") from None
        net = GateNet(len(saved.get("classes", GATE_CLASSES)))
        net.load_state_dict(saved["state_dict"])
        return cls(net, saved["threshold"], {k: v for k, v in saved.items() if k != "state_dict"}, runtime)

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities (B, classes) for gate inputs (B, 64, 64)."""
        return self._probabilities(np.ascontiguousarray(inputs, dtype=np.float32))

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


class _WithSoftmax(nn.Module):
    """(B, 64, 64) to probabilities (B, classes): what `InputGate.scores` gives, as one graph to export."""

    def __init__(self, net: GateNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x[:, None]), dim=1)


def _eager(net: GateNet) -> Callable[[np.ndarray], np.ndarray]:
    whole = _WithSoftmax(net).eval()

    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return whole(torch.from_numpy(inputs)).numpy()

    return run


def _onnxruntime(net: GateNet) -> Callable[[np.ndarray], np.ndarray] | None:
    """The gate exported to ONNX and run by ONNX Runtime on one thread, checked against eager on drawn
    inputs; None where ONNX Runtime is not installed or the check fails (logged)."""
    try:
        import onnxruntime  # noqa: F401 - only whether it is installed (the API's extra)
    except ImportError:
        return None
    whole = _WithSoftmax(net).eval()
    example = torch.rand(2, GATE_SIZE, GATE_SIZE, generator=torch.Generator().manual_seed(0))
    # one thread: 0.1 ms of work, more threads would only wait for each other
    runtime = onnx_runtime("onnxruntime", export_onnx(whole, example), threads=1)

    def run(inputs: np.ndarray) -> np.ndarray:
        return runtime(torch.from_numpy(inputs)).numpy()

    with torch.inference_mode():
        expected = whole(example).numpy()
    off = float(np.abs(run(example.numpy()) - expected).max())
    if off > RUNTIME_TOLERANCE:
        log.warning("input gate: ONNX Runtime's probabilities are %.2g off eager PyTorch's; using eager", off)
        return None
    return run
