"""Server paths as strangers see them: relative to their root, else only their last part."""

from __future__ import annotations

from pathlib import Path

from registry.paths import PathView


def test_paths_are_shown_relative_to_the_root_holding_them(tmp_path: Path) -> None:
    data, store = tmp_path / "data", tmp_path / "data" / "artifacts"
    view = PathView([data, store])
    assert view.path(data / "nih" / "table.csv") == "nih/table.csv"
    assert view.path((store / "runs" / "7" / "model.pt").as_uri()) == "runs/7/model.pt"  # the nested root wins
    assert view.path(data) == "."
    assert view.path("/etc/passwd") == "passwd" and view.path("relative/as/is") == "relative/as/is"


def test_a_root_reached_through_a_link_is_recognised_by_either_spelling(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    view = PathView([tmp_path / "link"])
    assert view.path(tmp_path / "real" / "a.npz") == view.path(tmp_path / "link" / "a.npz") == "a.npz"


def test_paths_inside_text_and_json_values_are_rewritten(tmp_path: Path) -> None:
    view = PathView([tmp_path])
    message = f"NIH table not found: {tmp_path}/nih/x.csv; see '/srv/secret/y.csv' or {(tmp_path / 'm.pt').as_uri()}"
    assert view.text(message) == "NIH table not found: nih/x.csv; see 'y.csv' or m.pt"
    assert view.text("U-Ones/U-Zeros at 1/0, http://host/a/b") == "U-Ones/U-Zeros at 1/0, http://host/a/b"
    config = {"data_root": str(tmp_path / "d.npz"), "dataset_options": {"csv": "/elsewhere/t.csv", "n": 3},
              "list": ["/x/y", "plain"]}
    assert view.value(config) == {"data_root": "d.npz", "dataset_options": {"csv": "t.csv", "n": 3},
                                  "list": ["y", "plain"]}
