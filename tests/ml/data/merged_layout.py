"""A tiny copy of the shared data layout that the `merged` adapter reads: real Kermany sample JPEGs,
small synthetic 3-class and NIH members."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def _png(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)


def recoded_copy(source: Path, target: Path, size: tuple[int, int] = (256, 300), quality: int = 85) -> Path:
    """`source` as another collection stores it: resized to `size` (another aspect ratio), JPEG of another
    quality."""
    image = Image.open(source).convert("L").resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return target


def build_shared_layout(root: Path, data_dir: Path) -> Path:
    """The three members' files under `root`, laid out as in shared/data, a handful of images each."""
    kermany = root / "kermany-pediatric-pneumonia"
    shutil.copytree(data_dir / "kermany-sample", kermany / "full_224px_waliatushar" / "train")
    for cls in ("NORMAL", "PNEUMONIA"):
        for f in sorted((data_dir / "kermany-sample" / cls).iterdir())[:3]:
            target = kermany / "test_224px" / cls / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)
    tb = root / "cxr3class-normal-pneumonia-tb" / "parth261204_256px"
    for k, cls in enumerate(("normal", "pneumonia", "tuberculosis")):
        for i in range(10):
            _png(tb / cls / f"{cls}-{i}.png", seed=100 * k + i)
    nih = root / "nih-chestxray14"
    rows, arrays, seed = [], {}, 1000
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        names = [f"{split}{i:03d}_000.png" for i in range(n)]
        labels = np.random.default_rng(seed).integers(0, 2, (n, 14)).astype(np.uint8)
        arrays |= {f"{split}_names": np.array(names), f"{split}_labels": labels,
                   f"{split}_images": np.zeros((n, 28, 28), np.uint8)}
        for i, name in enumerate(names):
            _png(nih / "nih1000_64px_dinbe0527" / split / name, seed=seed + i)
            rows.append({"path": f"{split}/{name}", "image": name, "patient_id": seed + i, "age": 50, "sex": "F",
                         "view": "PA"})
        seed += 100
    pd.DataFrame(rows).to_csv(nih / "nih1000_64px_dinbe0527" / "labels.csv", index=False)
    np.savez(nih / "nih1000_chestmnist_format_28.npz", **arrays)
    return root
