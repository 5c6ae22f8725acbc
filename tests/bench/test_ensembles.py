"""bench.ensembles: which shipped models it times against another revision."""

from __future__ import annotations

import pytest

from bench import ensembles


def test_a_revision_with_the_same_weights_has_nothing_to_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert ensembles.changed_models("HEAD") == {}  # the shipped weights are committed
    assert ensembles.main(["--against", "HEAD"]) == 0
    assert "no shipped model's weights differ from HEAD" in capsys.readouterr().out


def test_a_model_missing_at_the_revision_is_left_out() -> None:
    assert ensembles._shipped_at("HEAD", "no-such-model/model.pt") is None
    assert ensembles._shipped_at("HEAD", "manifest.toml").startswith(b"#")
