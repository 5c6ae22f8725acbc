"""The two diagnostics of images shared across the merged collections, on a tiny copy of the shared layout whose
3-class set holds re-encoded Kermany radiographs filed as pneumonia: `tools.collection_copies` (what is shared
and what `merged` drops) and `tools.copy_leak` (which test rows an older merged model could have seen)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ml.data import create_dataset
from tests.ml.data.merged_layout import build_shared_layout, recoded_copy
from tools import collection_copies
from tools.copy_leak import copied_test_rows


@pytest.fixture(scope="module")
def shared(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_shared_layout(tmp_path_factory.mktemp("shared"), data_dir)
    pneumonia = root / "cxr3class-normal-pneumonia-tb" / "parth261204_256px" / "pneumonia"
    for k, image in enumerate(sorted((data_dir / "kermany-sample" / "NORMAL").iterdir())[:8]):
        recoded_copy(image, pneumonia / f"pneumonia-copy-{k}.jpg")
    return root


def test_the_report_counts_the_copies_and_the_rows_merged_drops(shared: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert collection_copies.main(["--root", str(shared)]) == 0
    out = capsys.readouterr().out
    # the eight copies, each Kermany NORMAL = 3-class pneumonia (three of them also Kermany test images)
    shared_pairs = re.findall(r"(\d+) copies: kermany \w+ 'normal' = cxr3class \w+ 'pneumonia'", out)
    assert sum(map(int, shared_pairs)) == 8 + 3
    # the 3-class member takes Kermany's label for its eight copies, and says so per split
    moved = re.findall(r"(\d+) \w+ rows filed as 'pneumonia' take the publisher's 'normal'", out)
    assert sum(map(int, moved)) == 8
    assert not re.search(r"copies: \w+ \w+ '[^']*' = nih", out)  # the NIH member shares nothing
    dropped = int(re.search(r"merged drops (\d+) of (\d+) rows", out).group(1))
    merged = create_dataset("merged", shared)
    total = int(re.search(r"merged drops \d+ of (\d+) rows", out).group(1))
    assert dropped > 0 and total - dropped == len(merged)
    # Kermany rows whose 3-class twin went beside them gain its Tuberculosis label, as the merged rows show
    gained = sum(int(n) for n in re.findall(r"(\d+) kermany \w+ rows kept gain Tuberculosis", out))
    tb = merged.labels[:, merged.pathologies.index("Tuberculosis")]
    assert gained > 0 and gained == int((merged.metadata["source"].eq("kermany").to_numpy() & ~np.isnan(tb)).sum())


def test_the_leak_check_finds_the_test_images_another_member_trains_on(shared: Path) -> None:
    copied = copied_test_rows(shared, ["kermany", "cxr3class", "nih"])
    cxr = create_dataset("merged", shared, members=["cxr3class"]).metadata
    copy_split = {Path(p).name: s for p, s in zip(cxr["path"], cxr["split"], strict=True)
                  if "pneumonia-copy-" in p}
    # the layout's Kermany test images are the first three NORMAL ones: copied as pneumonia-copy-0..2; each
    # is leaked unless its 3-class copy is itself a test row
    leaked = {f"pneumonia-copy-{k}.jpg" for k in range(3) if copy_split[f"pneumonia-copy-{k}.jpg"] != "test"}
    assert len(copied["kermany"]) == len(leaked)
    assert all("test_224px" in p for p in copied["kermany"])
    # 3-class test copies of Kermany images all leak: each Kermany image is also a Kermany training row
    assert {Path(p).name for p in copied["cxr3class"]} == {n for n, s in copy_split.items() if s == "test"}
    assert copied["nih"] == set()
