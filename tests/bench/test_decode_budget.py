"""`bench.decode_budget` on small images: every upload it builds decodes, and one is measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.decode_budget import build, measure_one
from ml.imaging import probe_image, read_image


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux /proc")
def test_the_uploads_decode_and_a_measure_reads_the_process(tmp_path: Path) -> None:
    paths = build(tmp_path, 96)
    assert sorted(paths) == sorted(["png-rgba-zero", "jpeg-progressive-rgb", "tiff-deflate-rgb",
                                    "dicom-deflated-12bit", "dicom-j2k-12bit"])
    for name, path in paths.items():
        assert read_image(path).shape == (96, 96), name
    assert "JPEG 2000" in probe_image(paths["dicom-j2k-12bit"]).transfer_syntax
    figures = measure_one(paths["dicom-j2k-12bit"], 96 * 96)
    assert figures["bytes"] == paths["dicom-j2k-12bit"].stat().st_size
    assert figures["peak_mb"] >= 0 and figures["cpu_s"] >= 0 and figures["wall_s"] > 0
