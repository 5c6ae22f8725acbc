"""bench.overlays: which checkpoints each tree serves (the timed runs themselves are the benchmark's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import overlays


def test_own_models_reads_the_other_trees_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text('[[model]]\nname = "pneumonia"\npath = "older/model.pt"\n')
    assert overlays._checkpoints(tmp_path, False, tmp_path) == {"pneumonia": tmp_path / "older" / "model.pt"}
    ours = overlays._checkpoints(tmp_path, False)
    assert ours["pneumonia"] == overlays.SHIPPED / "pneumonia" / "model.pt" and "all-cxr" in ours


def test_own_models_needs_another_tree(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        overlays.main(["--own-models"])
    assert exc.value.code == 2 and "give the other tree with --against REV" in capsys.readouterr().err
