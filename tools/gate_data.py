"""The images the input gate learns from and is measured on (`python -m tools.gate`).

Chest X-rays (positives) are every real set in `../shared/data` (PneumoniaMNIST 28 px, the NIH 1000 at 28
and 64 px, Kermany at 224 px, the 3-class set at 256 px) with their train/val/test splits (ours, by a hash
of the file name, where a set has none), and for the test only the full-size images: Kermany's val16,
five NIH at 1024 px and the repository's `data/` samples. Everything else (negatives) comes from what
installed packages ship and from drawing:

* train: scikit-learn's `china.jpg`; matplotlib's `grace_hopper.jpg`, `jacksboro_fault_dem.npz` (elevation)
  and `topobathy.npz`; pydicom's test images `693_J2KI`, `image_dfl`, `JPEG2000`, `examples_jpeg2k`,
  `examples_overlay`, `SC_jpeg_no_color_transform`; drawn noise (white, salt and pepper, smooth and 1/f),
  gradients, shapes and constant images; and every training radiograph inverted or turned 90/180/270 degrees.
* test only (categories and files never seen in training): scikit-learn's `flower.jpg`; matplotlib's
  `logo2.png`, `Minduka_Present_Blue_Pack.png` and `s1045.ima.gz` (an MR slice); pydicom's `CT_small`,
  `MR_small`, `liver_1frame` (CT), `examples_palette`, `examples_rgb_color`, `examples_ybr_color`,
  `GDCMJ2K_TextGBR`, `JPGExtended`, `SC_rgb_jpeg`; drawn text, checkerboards and stripes, and charts; and the
  test radiographs inverted and rotated.

(scikit-image is not installed here, so none of its images is used.)
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ml.imaging import read_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def _site(package: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).parent


def _split_of(name: str, val: float = 0.1, test: float = 0.2) -> str:
    """A stable split from the file name (no RNG state involved)."""
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if h < test else "val" if h < test + val else "train"


# -- chest X-rays ------------------------------------------------------------------------------------


XraySource = bytes | np.ndarray  # a file as uploaded, or an array of a set shipped as arrays


def as_image(item: XraySource) -> np.ndarray:
    return read_image(item) if isinstance(item, bytes) else item


def as_file(item: XraySource) -> bytes:
    return item if isinstance(item, bytes) else png8(item)


def xray_sets(root: Path = SHARED) -> dict[str, dict[str, Callable[[], list[XraySource]]]]:
    """dataset -> split -> loader of its radiographs (files as bytes, arrays as grey float in [0, 1])."""
    pmnist = root / "pneumoniamnist" / "pneumoniamnist_reconstructed_full.npz"
    nih28 = root / "nih-chestxray14" / "nih1000_chestmnist_format_28.npz"
    nih64 = root / "nih-chestxray14" / "nih1000_64px_dinbe0527"
    kermany = root / "kermany-pediatric-pneumonia"
    three = root / "cxr3class-normal-pneumonia-tb" / "parth261204_256px"

    def npz(path: Path, key: str) -> Callable[[], list[XraySource]]:
        return lambda: [a.astype(np.float32) / 255 for a in np.load(path)[f"{key}_images"]]

    def files(paths: list[Path]) -> Callable[[], list[XraySource]]:
        return lambda: [p.read_bytes() for p in paths]

    kermany_train = sorted((kermany / "full_224px_waliatushar" / "train").rglob("*.jpeg"))
    three_files = sorted(p for p in three.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    samples = sorted(p for d in ("samples", "nih-sample", "kermany-sample") for p in (REPO_DATA / d).rglob("*")
                     if p.suffix.lower() in (".png", ".jpeg", ".jpg"))
    onek = root / "nih-chestxray14" / "unlabelled_fullres_openjphpy" / "nih_cxr_5x1024_openjphpy_dataset1.npz"
    return {
        "pneumoniamnist-28": {s: npz(pmnist, s) for s in ("train", "val", "test")},
        "nih-28": {s: npz(nih28, s) for s in ("train", "val", "test")},
        "nih-64": {s: files(sorted((nih64 / d).rglob("*.png"))) for s, d in
                   (("train", "train"), ("val", "valid"), ("test", "test"))},
        "kermany-224": {
            "train": files([p for p in kermany_train if _split_of(p.name, 0.1, 0.0) == "train"]),
            "val": files([p for p in kermany_train if _split_of(p.name, 0.1, 0.0) == "val"]),
            "test": files(sorted((kermany / "test_224px").rglob("*.jpeg"))),
        },
        "cxr3class-256": {s: files([p for p in three_files if _split_of(p.name) == s])
                          for s in ("train", "val", "test")},
        "kermany-full-size": {"test": files(sorted((kermany / "val16").rglob("*.jpeg")))},
        "nih-1024": {"test": lambda: [a.astype(np.float32) / 255 for a in np.load(onek).values()]},
        "repo-samples": {"test": files(samples)},
    }


# -- package images ----------------------------------------------------------------------------------

TRAIN_PACKAGE_FILES = [
    ("sklearn", "datasets/images/china.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("matplotlib", "mpl-data/sample_data/jacksboro_fault_dem.npz"),
    ("matplotlib", "mpl-data/sample_data/topobathy.npz"),
    *[("pydicom", f"data/test_files/{n}.dcm") for n in (
        "693_J2KI", "image_dfl", "JPEG2000", "examples_jpeg2k", "examples_overlay", "SC_jpeg_no_color_transform")],
]
TEST_PACKAGE_FILES = [
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/logo2.png"),
    ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png"),
    ("matplotlib", "mpl-data/sample_data/s1045.ima.gz"),
    *[("pydicom", f"data/test_files/{n}.dcm") for n in (
        "CT_small", "MR_small", "liver_1frame", "examples_palette", "examples_rgb_color", "examples_ybr_color",
        "GDCMJ2K_TextGBR", "JPGExtended", "SC_rgb_jpeg")],
]


def package_file(package: str, rel: str) -> tuple[str, bytes]:
    """(name, bytes of an image file): arrays (npz, raw MR) are written as 16-bit PNG, so everything is a file
    an upload could be."""
    path = _site(package) / rel
    if path.suffix == ".npz":
        data = np.load(path)
        arr = data["elevation"] if "elevation" in data.files else data["topo"]
        return path.name, png16(_unit(arr.astype(np.float32)))
    if path.name.endswith(".ima.gz"):
        arr = np.frombuffer(gzip.decompress(path.read_bytes()), np.uint16).reshape(256, 256)
        return path.name, png16(_unit(arr.astype(np.float32)))
    return path.name, path.read_bytes()


def _unit(arr: np.ndarray) -> np.ndarray:
    arr = arr - arr.min()
    return arr / max(float(arr.max()), 1e-6)


# -- drawn images --------------------------------------------------------------------------------------


def _smooth(rng: np.random.Generator, size: int) -> np.ndarray:
    small = rng.random((rng.integers(3, 16),) * 2).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _pink(rng: np.random.Generator, size: int) -> np.ndarray:
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None] ** 2)
    radius[0, 0] = 1
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius ** rng.uniform(0.8, 1.6)
    return np.real(np.fft.ifft2(spectrum)).astype(np.float32)


def _shapes(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size), rng.random(), np.float32)
    for _ in range(rng.integers(1, 12)):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = float(rng.random())
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(img, c, int(rng.integers(3, size // 2)), colour, -1 if rng.random() < 0.7 else 2)
        elif kind == 1:
            cv2.rectangle(img, c, tuple(int(v) for v in rng.integers(0, size, 2)), colour, -1 if rng.random() < 0.7 else 2)
        else:
            cv2.line(img, c, tuple(int(v) for v in rng.integers(0, size, 2)), colour, int(rng.integers(1, 6)))
    return img


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        return np.cos(a) * x + np.sin(a) * y
    cx, cy = rng.random(2)
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2)


def _text(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size), int(rng.integers(180, 256)), np.uint8)  # OpenCV draws text on 8-bit images
    words = ["REPORT", "Patient", "chest", "1234", "Lorem ipsum", "dolor sit", "X-RAY", "invoice", "total"]
    for row in range(int(rng.integers(3, 12))):
        y = int((row + 1) * size / 13)
        cv2.putText(img, " ".join(rng.choice(words, 3)), (int(rng.integers(0, 20)), y),
                    int(rng.integers(0, 7)), rng.uniform(0.3, 0.9), int(rng.integers(0, 80)), 1)
    return img.astype(np.float32) / 255


def _checker(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    period = int(rng.integers(4, 40))
    if rng.random() < 0.5:
        return (((x // period) + (y // period)) % 2).astype(np.float32)
    return (0.5 + 0.5 * np.sin(2 * np.pi * (x * rng.random() + y * rng.random()) / period)).astype(np.float32)


def _chart(rng: np.random.Generator, size: int) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3), dpi=size / 3)
    kind = rng.integers(3)
    values = rng.random(12).cumsum()
    if kind == 0:
        ax.plot(values)
    elif kind == 1:
        ax.bar(range(12), values)
    else:
        ax.scatter(rng.random(50), rng.random(50))
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    return (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:
        return rng.random((size, size)).astype(np.float32)
    if kind == 1:
        return (rng.random((size, size)) < rng.uniform(0.05, 0.95)).astype(np.float32)
    return _smooth(rng, size) + rng.normal(0, rng.uniform(0, 0.2), (size, size)).astype(np.float32)


def _constant(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.full((size, size), rng.random(), np.float32) + rng.normal(0, 0.002, (size, size)).astype(np.float32)


TRAIN_DRAWN: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "noise": _noise, "smooth-noise": lambda r, s: _smooth(r, s), "pink-noise": _pink, "gradient": _gradient,
    "shapes": _shapes, "constant": _constant,
}
TEST_DRAWN: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "text": _text, "checker-stripes": _checker, "chart": _chart,
}


def drawn(kind: str, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    make = {**TRAIN_DRAWN, **TEST_DRAWN}[kind]
    return np.clip(_unit(make(rng, size)), 0, 1).astype(np.float32)


# -- encodings -----------------------------------------------------------------------------------------


def png8(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def png16(image: np.ndarray, bits: int = 16) -> bytes:
    """A 16-bit PNG; `bits` < 16 stores values up to 2**bits - 1 (a 12-bit detector's file)."""
    levels = np.round(np.clip(image, 0, 1) * (2**bits - 1)).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(levels).save(out, format="PNG")
    return out.getvalue()


def dicom(image: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 12) -> bytes:
    """A DX DICOM file of `image` stored at `bits`; MONOCHROME1 stores it inverted, as such a detector does."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    top = 2**bits - 1
    stored = np.round(np.clip(image, 0, 1) * top)
    if photometric == "MONOCHROME1":
        stored = top - stored
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "DX", image.shape[0], image.shape[1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = stored.astype("<u2").tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def crops(image: np.ndarray, rng: np.random.Generator, count: int) -> Iterator[np.ndarray]:
    """Random crops (30-100% of each side) of `image`, the whole image first."""
    yield image
    h, w = image.shape
    for _ in range(count - 1):
        ch, cw = max(8, int(h * rng.uniform(0.3, 1))), max(8, int(w * rng.uniform(0.3, 1)))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        yield image[top : top + ch, left : left + cw]
