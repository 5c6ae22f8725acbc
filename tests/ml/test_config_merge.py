"""ml.config.merge_tables: a recipe's tables with overrides laid over them (cxr train flags, ensemble members)."""

from __future__ import annotations

from ml.config import merge_tables


def test_overrides_replace_leaves_and_merge_tables_without_changing_either() -> None:
    base = {"weights": {"kermany": 2.0, "cxr3class": 1.0, "nih": 1.0}, "members": ["kermany", "nih"], "lr": 2e-3}
    extra = {"weights": {"nih": 0.5}, "members": ["nih"], "epochs": 90}
    merged = merge_tables(base, extra)
    assert merged == {"weights": {"kermany": 2.0, "cxr3class": 1.0, "nih": 0.5}, "members": ["nih"], "lr": 2e-3,
                      "epochs": 90}
    assert base["weights"]["nih"] == 1.0 and extra == {"weights": {"nih": 0.5}, "members": ["nih"], "epochs": 90}
    assert merge_tables({"augment": True}, {"augment": {"rotation": 5}}) == {"augment": {"rotation": 5}}
