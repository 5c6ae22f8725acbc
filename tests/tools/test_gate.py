"""`python -m tools.gate evaluate --decode-for SIDE`: each image checked as serving decodes it for a model (a large
gray PNG or JPEG reduced, `ml.decoding`), so the gate's figures can be measured on what serving checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.decoding import read_image_for
from ml.imaging import read_image
from ml.trust import InputGate, colour_fraction
from tools.gate import _flag

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture(scope="module")
def gate() -> InputGate:
    return InputGate.load()


@pytest.mark.parametrize("name", ["nih_cxr_1024.png", "NORMAL2-IM-1438-0001.jpeg"])
def test_each_image_is_checked_as_decoded_in_full_or_for_a_model(gate: InputGate, name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    full, reduced = [], []
    assert not _flag(gate, data, "x", full) and not _flag(gate, data, "x", reduced, side=28)
    assert full[0]["score"] == gate.check(read_image(data), colour_fraction(data)).score
    decoded = read_image_for(data, short_side=28)
    assert decoded.reduction == 8 and decoded.image.shape != (decoded.height, decoded.width)
    served = gate.check(decoded.image, colour_fraction(data), (decoded.height, decoded.width))
    assert reduced[0]["score"] == served.score and reduced[0]["reasons"] == served.reasons
    assert np.isclose(full[0]["score"], reduced[0]["score"], atol=0.05)
