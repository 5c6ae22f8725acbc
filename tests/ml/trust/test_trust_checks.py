"""The cheap checks and the reader's view, on drawn images and real files (no gate weights needed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.imaging import read_image
from ml.trust import InputCheck, cheap_reasons, colour_fraction
from ml.trust.reading import decision_words, findings, label_aurocs, warnings


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def test_a_real_radiograph_passes_every_cheap_check(data_dir) -> None:
    for path in (data_dir / "samples").iterdir():
        data = path.read_bytes()
        assert cheap_reasons(read_image(data), colour_fraction(data)) == [], path.name


@pytest.mark.parametrize(("image", "words"), [
    (np.zeros((1, 1), np.float32), "too small"),
    (np.full((512, 512), 0.3, np.float32), "uniform"),
    (np.random.default_rng(0).random((100, 400)).astype(np.float32), "implausible shape"),
])
def test_cheap_checks_give_reasons_in_words(image: np.ndarray, words: str) -> None:
    assert any(words in r for r in cheap_reasons(image))


def test_colour_is_measured_from_the_file_not_the_grey_decode(data_dir) -> None:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8), "RGB")
    grey_rgb = Image.open(data_dir / "samples" / "person1951_bacteria_4882.jpeg").convert("RGB")  # R = G = B
    for fmt in ("PNG", "JPEG"):
        assert colour_fraction(_encode(photo, fmt)) > 0.5
        assert colour_fraction(_encode(grey_rgb, fmt)) < 0.01
    assert colour_fraction(_encode(photo.convert("L"), "PNG")) == 0.0  # a grey header is not decoded again
    reasons = cheap_reasons(read_image(_encode(photo, "PNG")), colour_fraction(_encode(photo, "PNG")))
    assert any("colour image" in r for r in reasons)


def test_findings_and_warnings_read_in_words() -> None:
    metrics = {"test": {"auroc": {"Effusion": 0.91, "Hernia": None, "Mass": 0.6}}}
    aurocs = label_aurocs(metrics)
    assert aurocs == {"Effusion": 0.91, "Mass": 0.6}
    items = findings({"Effusion": 0.7, "Hernia": 0.1, "Mass": 0.2}, {"Effusion": 0.4, "Hernia": 0.5, "Mass": 0.5},
                     ["Effusion"], aurocs)
    assert [(f.label, f.decision, f.reliable) for f in items] == [
        ("Effusion", "positive", True), ("Hernia", "negative", False), ("Mass", "negative", False)]
    assert decision_words(items[0]) == "positive (0.700 >= threshold 0.400)"
    flagged = InputCheck(False, 0.02, 0.4, ["colour image (40% of pixels coloured): a radiograph is grey"])
    text = warnings(items, flagged)
    assert text[0].startswith("This image may not be a chest X-ray (colour image")
    assert any("Mass: unreliable for this finding (test AUROC 0.60" in w for w in text)
    assert any("Hernia: unreliable for this finding (no test AUROC" in w for w in text)
    assert not any("Effusion" in w for w in text)
    assert warnings(items[:1], InputCheck(True, 0.9, 0.4, [])) == []


def test_findings_read_the_external_test_figures_before_the_runs_own_split() -> None:
    # a model shipped by tools.quality: its run's own split (drawn from the training pool) says 0.99, the
    # collection made apart says 0.62; the reading must go by the latter, as GET /models does
    metrics = {"test": {"auroc": {"Pneumonia": 0.99}}, "quality": {"per_label_auroc": {"Pneumonia": 0.62}}}
    assert label_aurocs(metrics) == {"Pneumonia": 0.62}
    assert label_aurocs({"quality": {"per_label_auroc": {"Pneumonia": 0.97}}}) == {"Pneumonia": 0.97}
    assert label_aurocs({"quality": "garbled", "test": {"auroc": {"Pneumonia": 0.8}}}) == {"Pneumonia": 0.8}
    assert label_aurocs(None) == {}
