"""The input check made cheap decides as before: percentiles bit for bit numpy's, and the gate's network in
ONNX Runtime within `RUNTIME_TOLERANCE` of eager PyTorch with the same flags and reasons."""

from __future__ import annotations

import numpy as np
import pytest

from ml.imaging import read_image
from ml.trust import InputGate, colour_fraction, gate_input
from ml.trust.gate import RUNTIME_TOLERANCE
from ml.trust.percentiles import percentiles


def _arrays(rng: np.random.Generator) -> list[np.ndarray]:
    """Sizes across the prefilter's threshold; continuous, 8-bit, mostly black, nearly flat and constant
    values; strided views like the check's image sample."""
    out = []
    for n in (1, 2, 3, 7, 200, 4096, 16_383, 16_384, 65_536, 90_001):
        out += [rng.random(n, dtype=np.float32),
                (rng.integers(0, 256, n) / 255).astype(np.float32),
                np.where(rng.random(n) < 0.7, 0, rng.random(n)).astype(np.float32),
                np.where(rng.random(n) < 0.7, 1, rng.random(n)).astype(np.float32),
                rng.normal(0.5, 1e-3, n).astype(np.float32),
                np.full(n, 0.3, np.float32),
                rng.random(n)]  # float64
    image = rng.random((1024, 1000), dtype=np.float32)
    image[:, :40] = 1.0  # a bright band: a column sub-sample would miss or over-weigh it
    out += [image[::4, ::3], image[::1, ::2], image[:300, :]]
    return out


@pytest.mark.parametrize("q", [(0.5, 99.5), (1, 99), (0, 100), (50,), (0.01, 99.99)])
def test_percentiles_are_numpys_bit_for_bit(q: tuple[float, ...]) -> None:
    for values in _arrays(np.random.default_rng(0)):
        got, expected = percentiles(values, q), np.percentile(values, q)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), (values.shape, values.dtype)


def test_percentiles_with_nan_are_numpys() -> None:
    values = np.random.default_rng(1).random(70_000).astype(np.float32)
    values[5] = np.nan
    assert np.isnan(percentiles(values, (0.5, 99.5))).all()


def test_onnxruntime_gate_scores_within_tolerance_and_decides_as_eager(data_dir) -> None:
    pytest.importorskip("onnxruntime")
    fast, eager = InputGate.load(), InputGate.load(runtime="eager")
    assert (fast.runtime, eager.runtime) == ("onnxruntime", "eager")
    rng = np.random.default_rng(2)
    images = [read_image(p.read_bytes()) for p in sorted((data_dir / "samples").iterdir())]
    images += [1 - images[0], np.rot90(images[0]).copy(), rng.random((300, 280), dtype=np.float32),
               np.linspace(0, 1, 256 * 256, dtype=np.float32).reshape(256, 256)]
    inputs = np.stack([gate_input(im) for im in images] + [rng.random((64, 64), dtype=np.float32)])
    assert np.abs(fast.scores(inputs) - eager.scores(inputs)).max() <= RUNTIME_TOLERANCE
    for image in images:
        a, b = fast.check(image), eager.check(image)
        assert (a.in_distribution, a.reasons) == (b.in_distribution, b.reasons)
        assert abs(a.score - b.score) <= 1e-4  # reported rounded to 4 places
    flagged = [not fast.check(im).in_distribution for im in images]
    assert flagged[:len(images) - 4] == [False] * (len(images) - 4) and all(flagged[-4:])


def test_the_eager_gate_can_be_chosen_and_an_unknown_runtime_is_refused(data_dir) -> None:
    path = next((data_dir / "samples").iterdir())
    data = path.read_bytes()
    assert InputGate.load(runtime="eager").check(read_image(data), colour_fraction(data)).in_distribution
    with pytest.raises(ValueError, match="unknown gate runtime"):
        InputGate.load(runtime="tensorrt")
