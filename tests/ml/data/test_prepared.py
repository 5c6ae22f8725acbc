"""The prepared dataset cache: written once, reused, invalidated when the source changes, and equal pixel
for pixel to decoding and resizing the files (quantised to uint8)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.data import create_dataset
from ml.data.batches import Batches
from ml.data.prepared import prepare, to_uint8
from ml.models import get_model_config
from ml.transforms import Preprocess, resolve_data_config


@pytest.fixture
def nih(data_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "nih"
    shutil.copytree(data_dir / "nih-sample", root)
    return root


def _cfg(size: int = 32):
    return resolve_data_config(get_model_config("simple_cnn"), input_size=size)


def test_written_once_then_reused(nih: Path, tmp_path: Path) -> None:
    ds = create_dataset("nih", nih, split="patient")
    calls: list[tuple[int, int]] = []
    first = prepare("nih", ds.images, _cfg(), tmp_path / "cache", progress=lambda d, n: calls.append((d, n)))
    assert first.built and first.array.shape == (len(ds), 32, 32) and first.array.dtype == np.uint8
    assert calls[-1] == (len(ds), len(ds))  # progress reached the end
    written = (first.folder / "images.npy").stat().st_mtime_ns
    again = prepare("nih", create_dataset("nih", nih, split="patient").images, _cfg(), tmp_path / "cache")
    assert not again.built and again.folder == first.folder
    assert (again.folder / "images.npy").stat().st_mtime_ns == written
    assert np.array_equal(np.asarray(again.array), np.asarray(first.array))
    # another input size is another cache
    other = prepare("nih", ds.images, _cfg(48), tmp_path / "cache")
    assert other.built and other.folder != first.folder
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2


def test_a_changed_source_invalidates_it(nih: Path, tmp_path: Path) -> None:
    ds = create_dataset("nih", nih, split="patient")
    first = prepare("nih", ds.images, _cfg(), tmp_path / "cache")
    # rewrite one image with other pixels (mirrored): same name, new content and mtime
    from PIL import Image

    path = ds.images.paths[0]
    with Image.open(path) as im:
        mirrored = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    mirrored.save(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse file-system clock still sees a change
    second = prepare("nih", create_dataset("nih", nih, split="patient").images, _cfg(), tmp_path / "cache")
    assert second.built and second.folder != first.folder
    assert not np.array_equal(np.asarray(second.array[0]), np.asarray(first.array[0]))  # the new pixels
    assert np.array_equal(np.asarray(second.array[1:]), np.asarray(first.array[1:]))
    # a removed file changes the file list: a new cache again
    path.unlink()
    third = prepare("nih", create_dataset("nih", nih, split="patient").images, _cfg(), tmp_path / "cache")
    assert third.built and third.folder not in (first.folder, second.folder) and len(third) == len(ds) - 1


def test_pixel_equal_to_the_raw_path(nih: Path, tmp_path: Path) -> None:
    ds = create_dataset("nih", nih, split="patient")
    cfg = _cfg(40)
    preprocess = Preprocess(cfg)
    cached = prepare("nih", ds.images, cfg, tmp_path / "cache")
    for i in range(len(ds)):
        raw = preprocess.resize(ds.images.load(i))
        assert np.array_equal(np.asarray(cached.array[i]), to_uint8(raw)), i
        # the quantisation is the only difference from the float path: at most half a grey level
        assert float((torch.from_numpy(np.asarray(cached.array[i])).float() / 255 - raw[0]).abs().max()) <= 0.5 / 255 + 1e-6
    # batches from the cache are the raw batches quantised
    from_cache = Batches(ds, preprocess, batch_size=16, shuffle=False, prepared=cached.tensor())
    from_files = Batches(ds, preprocess, batch_size=16, shuffle=False, in_memory=False)
    for (a, la), (b, lb) in zip(from_cache.epoch(), from_files.epoch(), strict=True):
        assert a.shape == b.shape and torch.equal(la, lb)
        assert float((a - b).abs().max()) <= 0.5 / 255 + 1e-6


def test_a_parallel_build_equals_the_serial_one(nih: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.data import prepared

    monkeypatch.setattr(prepared, "CHUNK", 10)  # several chunks from 48 images
    ds = create_dataset("nih", nih, split="patient")
    serial = prepare("nih", ds.images, _cfg(), tmp_path / "serial")
    parallel = prepare("nih", ds.images, _cfg(), tmp_path / "parallel", workers=2)
    assert np.array_equal(np.asarray(serial.array), np.asarray(parallel.array))


def test_arrays_are_fingerprinted_by_content(data_dir: Path, tmp_path: Path) -> None:
    ds = create_dataset("pneumoniamnist", data_dir / "pneumoniamnist").split("val")
    first = prepare("pmnist", ds.images, _cfg(28), tmp_path / "cache")
    assert first.built and not prepare("pmnist", ds.images, _cfg(28), tmp_path / "cache").built
    ds.images.array = ds.images.array.copy()
    ds.images.array[0, 0, 0] ^= 1
    assert prepare("pmnist", ds.images, _cfg(28), tmp_path / "cache").built
