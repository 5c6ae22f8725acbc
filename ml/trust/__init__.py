"""Whether an input is a chest X-ray the served models can read: cheap image checks and a small learned gate.

The gate does not depend on the served model: `InputGate` combines the checks of `ml.trust.checks` (too
small, nearly uniform, colour, implausible shape) with `GateNet`, a tiny CNN that tells a chest radiograph
shown the usual way from anything else (photos, other modalities, noise, an inverted or rotated radiograph),
trained by `python -m tools.gate train` and shipped as `ml/trust/gate.pt`.
"""

from ml.trust.checks import cheap_reasons, colour_fraction
from ml.trust.gate import GATE_CLASSES, GATE_SIZE, GateNet, InputCheck, InputGate, gate_input

__all__ = ["GATE_CLASSES", "GATE_SIZE", "GateNet", "InputCheck", "InputGate", "cheap_reasons", "colour_fraction",
           "gate_input"]
