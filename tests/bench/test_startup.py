"""`bench.startup` refuses a run with nothing to measure before it starts any process."""

from __future__ import annotations

import pytest

from bench.startup import main


def test_no_repeats_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--repeats", "0"])
    assert exited.value.code == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
