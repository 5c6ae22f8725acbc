"""The costliest legal uploads at the default pixel limit: what each costs to decode and resize.

    python -m bench.decode_budget            # each format at CXR_MAX_IMAGE_PIXELS's default (40M pixels)
    python -m bench.decode_budget --side 4320

Builds, in a temporary folder, a square image of `side` pixels (the default: the largest square within the
limit) in each of the formats that cost most per pixel: a zero RGBA PNG, a progressive RGB JPEG (4:4:4), a
deflate RGB TIFF, a deflated 12-bit DICOM and a lossless 12-bit JPEG 2000 DICOM of a real radiograph (the
shipped 1024 px sample, enlarged, with a little noise, so the codestream is not trivially small). Each is
decoded by `read_image` and resized to 224 px in a fresh process, which reports its peak resident memory
above its state after imports (VmHWM reset through /proc/self/clear_refs) and its CPU time. These are the
figures the upload budget (docs/security.md, "Upload decoding budget") is set from. Writes
bench/results/decode_budget.json.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.settings import AppSettings
from bench.common import machine, write_result

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "data" / "samples" / "nih_cxr_1024.png"


def _dicom(pixels: np.ndarray, syntax: str) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Rows, ds.Columns = "DX", *pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds["PixelData"].VR = "OW"
    if syntax == "j2k":
        from pydicom.uid import JPEG2000Lossless

        ds.compress(JPEG2000Lossless)
    else:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def build(folder: Path, side: int) -> dict[str, Path]:
    """The uploads, written to `folder`."""
    files: dict[str, bytes] = {}
    rgb = Image.new("RGB", (side, side))
    out = io.BytesIO()
    rgb.convert("RGBA").save(out, "PNG")
    files["png-rgba-zero"] = out.getvalue()
    out = io.BytesIO()
    rgb.save(out, "JPEG", progressive=True, subsampling=0)
    files["jpeg-progressive-rgb"] = out.getvalue()
    out = io.BytesIO()
    rgb.save(out, "TIFF", compression="tiff_adobe_deflate")
    files["tiff-deflate-rgb"] = out.getvalue()
    del rgb
    with Image.open(SAMPLE) as im:
        radiograph = np.asarray(im.convert("L").resize((side, side), Image.BILINEAR), dtype=np.uint16) * 16  # 12-bit
    rng = np.random.default_rng(0)
    # noise to make the files as large as an upload may be (32 MiB): the decoders' cost grows with it
    files["dicom-deflated-12bit"] = _dicom(radiograph + rng.integers(0, 2, radiograph.shape, np.uint16), "deflated")
    files["dicom-j2k-12bit"] = _dicom(radiograph + rng.integers(0, 16, radiograph.shape, np.uint16), "j2k")
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def measure_one(path: Path, max_pixels: int) -> dict[str, float]:
    """Decode and resize `path` in this process: peak memory above the state after imports, CPU time."""
    import os

    from ml.imaging import read_image
    from ml.models import create_model
    from ml.transforms import Preprocess, resolve_data_config

    preprocess = Preprocess(resolve_data_config(create_model("simple_cnn", num_classes=1).cfg, input_size=224))
    preprocess.resize(read_image(SAMPLE))  # the code paths warm, as in a running server
    data = path.read_bytes()

    def status(key: str) -> int:
        line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(key))
        return int(line.split()[1]) * 1024

    Path("/proc/self/clear_refs").write_text("5")
    rss, cpu = status("VmRSS"), os.times()
    start = time.perf_counter()
    preprocess.resize(read_image(data, max_pixels=max_pixels))
    wall = time.perf_counter() - start
    end = os.times()
    seconds = (end.user - cpu.user) + (end.system - cpu.system)
    return {"bytes": len(data), "peak_mb": (status("VmHWM") - rss) / 2**20, "cpu_s": round(max(0.0, seconds), 3),
            "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    limit = AppSettings.model_fields["max_image_pixels"].default
    parser.add_argument("--side", type=int, default=math.isqrt(limit), help="image side in pixels")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, max(limit, args.side**2))))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"building {args.side} x {args.side} uploads ...", flush=True)
        for name, path in build(Path(tmp), args.side).items():
            child = subprocess.run([sys.executable, "-m", "bench.decode_budget", "--one", str(path)],
                                   cwd=REPO_ROOT, capture_output=True, text=True, check=True)
            row = {"upload": name, **json.loads(child.stdout.strip().splitlines()[-1])}
            results.append(row)
            over = "  (over the upload limit)" if row["bytes"] > AppSettings.model_fields["max_upload_bytes"].default else ""
            print(f"{name:22s} {row['bytes'] / 2**20:7.1f} MiB  peak +{row['peak_mb']:5.0f} MB  "
                  f"CPU {row['cpu_s']:5.2f} s  wall {row['wall_s']:5.2f} s{over}", flush=True)
    write_result("decode_budget", {"machine": machine(), "side": args.side, "uploads": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
