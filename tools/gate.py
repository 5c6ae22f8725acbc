"""Train and measure the input gate (`ml.trust`): `python -m tools.gate train`, `python -m tools.gate evaluate`.

`train` fits `GateNet` on the training images of `tools.gate_data` (seed 0; a few minutes on two CPU cores),
chooses the threshold on the validation radiographs (the score under which at most 1% of them fall) and
writes `ml/trust/gate.pt`. `evaluate` sends every held-out image through the whole check as an upload would
go (its file's bytes decoded by `ml.imaging`, colour measured, cheap checks, the gate) and prints the share
flagged per category: real test radiographs per data set and encoding (8- and 16-bit PNG, 12 bits in 16,
DICOM MONOCHROME2 and MONOCHROME1), and images that are not chest X-rays per kind.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml.decoding import read_image_for
from ml.imaging import read_image
from ml.trust import GATE_CLASSES, GateNet, InputGate, colour_fraction, gate_input
from ml.trust.gate import DEFAULT_WEIGHTS
from tools import gate_data as gd

log = logging.getLogger("tools.gate")
CXR, INVERTED, ROTATED, OTHER = range(len(GATE_CLASSES))


def _inputs(images: list[np.ndarray]) -> np.ndarray:
    return np.stack([gate_input(im) for im in images]) if images else np.zeros((0, 64, 64), np.float32)


def positives(split: str) -> dict[str, np.ndarray]:
    """Gate inputs of every data set's radiographs in `split`."""
    out = {}
    for name, splits in gd.xray_sets().items():
        if split in splits:
            out[name] = _inputs([gd.as_image(x) for x in splits[split]()])
    return out


def other_negatives(seed: int) -> np.ndarray:
    """Gate inputs of the training package images (40 crops each) and drawn images (400 per kind)."""
    rng = np.random.default_rng(seed)
    images = []
    for package, rel in gd.TRAIN_PACKAGE_FILES:
        image = read_image(gd.package_file(package, rel)[1])
        images += list(gd.crops(image, rng, 40))
    for kind in gd.TRAIN_DRAWN:
        images += [gd.drawn(kind, rng, int(rng.integers(48, 257))) for _ in range(400)]
    return _inputs(images)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small affine warps (10 degrees, 10% scale and shift), left-right flips, gamma and a little noise."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=g) * 2 - 1) * np.pi / 18
    scale = 1 + (torch.rand(b, generator=g) * 2 - 1) * 0.1
    shift = (torch.rand(b, 2, generator=g) * 2 - 1) * 0.1
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * 0.4)
    x = x.clamp(0, 1) ** gamma
    return (x + torch.randn(x.shape, generator=g) * 0.02 * torch.rand(b, 1, 1, 1, generator=g)).clamp(0, 1)


def _quarter_turns(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Each image of (B, 1, S, S) turned by k[i] quarter turns."""
    out = x.clone()
    for q in (1, 2, 3):
        out[k == q] = torch.rot90(x[k == q], q, dims=(2, 3))
    return out


def _batch(pos: torch.Tensor, neg: torch.Tensor, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Half radiographs, a quarter of them turned into inverted or rotated ones, a quarter other images."""
    n_pos, n_turned = size // 2, size // 4
    n_other = size - n_pos - n_turned
    xs = _augment(pos[torch.randint(len(pos), (n_pos + n_turned,), generator=g)], g)
    upright, turned = xs[:n_pos], xs[n_pos:]
    k = torch.randint(0, 4, (n_turned,), generator=g)  # 0: inverted only; 1-3: quarter turns
    invert = (k == 0) | (torch.rand(n_turned, generator=g) < 0.3)
    turned = torch.where(invert[:, None, None, None], 1 - turned, turned)
    turned = _quarter_turns(turned, k)
    others = neg[torch.randint(len(neg), (n_other,), generator=g)]
    others = _quarter_turns(others, torch.randint(0, 4, (n_other,), generator=g))
    others = torch.where(torch.rand(n_other, 1, 1, 1, generator=g) < 0.5, 1 - others, others)
    labels = torch.cat([torch.full((n_pos,), CXR), torch.where(k == 0, INVERTED, ROTATED), torch.full((n_other,), OTHER)])
    return torch.cat([upright, turned, others]), labels


def train(epochs: int, steps: int, batch: int, seed: int, out: Path) -> None:
    torch.manual_seed(seed)
    started = time.perf_counter()
    train_pos = positives("train")
    val_pos = positives("val")
    neg = other_negatives(seed)
    print(f"loaded in {time.perf_counter() - started:.0f} s: radiographs "
          + ", ".join(f"{k} {len(v)}" for k, v in train_pos.items()) + f"; other images {len(neg)}")
    # every data set weighs the same, whatever its size
    weights = torch.cat([torch.full((len(v),), 1 / len(v)) for v in train_pos.values()])
    pos = torch.from_numpy(np.concatenate(list(train_pos.values())))[:, None]
    neg_t = torch.from_numpy(neg)[:, None]
    g = torch.Generator().manual_seed(seed)
    net = GateNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps)
    for epoch in range(1, epochs + 1):
        net.train()
        total = 0.0
        for _ in range(steps):
            idx = torch.multinomial(weights, batch, replacement=True, generator=g)
            x, y = _batch(pos[idx], neg_t, batch, g)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"epoch {epoch}/{epochs}: loss {total / steps:.4f} ({time.perf_counter() - started:.0f} s)")
    net.eval()
    gate = InputGate(net, 0.5, runtime="eager")  # the threshold from the reference runtime
    val_scores = np.concatenate([gate.scores(v)[:, 0] for v in val_pos.values()])
    threshold = float(np.clip(np.quantile(val_scores, 0.01), 0.05, 0.5))
    flagged = {k: float((gate.scores(v)[:, 0] < threshold).mean()) for k, v in val_pos.items()}
    print(f"threshold {threshold:.3f} (1% quantile of {len(val_scores)} validation radiographs); validation "
          "flagged: " + ", ".join(f"{k} {v:.1%}" for k, v in flagged.items()))
    torch.save({"state_dict": {k: v.clone() for k, v in net.state_dict().items()}, "threshold": threshold,
                "classes": list(GATE_CLASSES), "size": 64, "seed": seed, "epochs": epochs, "steps": steps,
                "batch": batch, "trained_on": {k: len(v) for k, v in train_pos.items()} | {"other": len(neg)}},
               out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - started:.0f} s")


# -- evaluation ----------------------------------------------------------------------------------------


def _flag(gate: InputGate, data: bytes, category: str, checks: list[dict] | None = None, side: int = 0) -> bool:
    """Whether the gate flags `data`, decoded in full, or with `side` as serving decodes it for a model whose
    resize starts from `side` pixels (`ml.decoding`: a large JPEG or gray PNG reduced)."""
    if side:
        decoded = read_image_for(data, short_side=side)
        check = gate.check(decoded.image, colour_fraction(data), (decoded.height, decoded.width))
    else:
        check = gate.check(read_image(data), colour_fraction(data))
    if checks is not None:
        checks.append({"category": category, **check.as_dict()})
    return not check.in_distribution


def xray_variants(item: gd.XraySource) -> Iterator[tuple[str, bytes, bool]]:
    """(encoding, file, should be flagged) for one test radiograph."""
    image = gd.as_image(item)
    yield "as shipped", gd.as_file(item), False
    yield "png 16-bit", gd.png16(image), False
    yield "png 12 bits in 16", gd.png16(image, bits=12), False
    yield "dicom MONOCHROME2", gd.dicom(image), False
    yield "dicom MONOCHROME1", gd.dicom(image, "MONOCHROME1"), False
    yield "inverted (png)", gd.png8(1 - image), True
    yield "inverted (MONOCHROME1 read as 2)", gd.dicom(1 - image), True
    for k in (1, 2, 3):
        yield f"rotated {90 * k}", gd.png8(np.rot90(image, k).copy()), True


def other_items(seed: int) -> Iterator[tuple[str, bytes]]:
    """(category, file) for images that are not chest X-rays, none seen in training."""
    rng = np.random.default_rng(seed)
    for package, rel in gd.TEST_PACKAGE_FILES:
        name, data = gd.package_file(package, rel)
        yield f"package file: {name}", data
        image = read_image(data)
        for crop in list(gd.crops(image, rng, 11))[1:]:
            yield "package files: crops (grey)", gd.png8(crop)
    for kind in gd.TEST_DRAWN:
        for _ in range(100):
            yield f"drawn (unseen kind): {kind}", gd.png8(gd.drawn(kind, rng, int(rng.integers(64, 400))))
    for kind in gd.TRAIN_DRAWN:
        for _ in range(50):
            yield f"drawn (new samples): {kind}", gd.png8(gd.drawn(kind, rng, int(rng.integers(64, 400))))


def evaluate(weights: Path, seed: int, out: Path | None, limit: int | None = None, checks_out: Path | None = None,
             side: int = 0) -> dict[str, dict[str, float]]:
    gate = InputGate.load(weights)
    rows: dict[str, list[bool]] = {}
    checks: list[dict] | None = [] if checks_out else None
    rng = np.random.default_rng(seed)
    for name, splits in gd.xray_sets().items():
        items = splits["test"]()
        if limit and len(items) > limit:  # a random subset, the same for a given seed
            items = [items[i] for i in sorted(rng.choice(len(items), limit, replace=False))]
        for item in items:
            for encoding, data, _ in xray_variants(item):
                category = f"chest X-ray {name}: {encoding}"
                rows.setdefault(category, []).append(_flag(gate, data, category, checks, side))
        print(f"{name}: {len(items)} test images checked", flush=True)
    for category, data in other_items(seed):
        rows.setdefault(category, []).append(_flag(gate, data, category, checks, side))
    table = {k: {"n": len(v), "flagged": float(np.mean(v))} for k, v in rows.items()}
    for k, v in table.items():
        print(f"{k:<70} {v['n']:>5} {v['flagged']:7.1%}")
    upright = [f for k, v in rows.items() if k.startswith("chest X-ray") and not _is_wrong(k) for f in v]
    wrong = [f for k, v in rows.items() if k.startswith("chest X-ray") and _is_wrong(k) for f in v]
    other = [f for k, v in rows.items() if not k.startswith("chest X-ray") for f in v]
    summary = {"real chest X-rays flagged": float(np.mean(upright)),
               "inverted or rotated chest X-rays flagged": float(np.mean(wrong)),
               "other images flagged": float(np.mean(other)),
               "not chest X-rays (other + inverted/rotated) flagged": float(np.mean(wrong + other))}
    for k, v in summary.items():
        print(f"{k:<70} {v:7.1%}")
    if out:
        out.write_text(json.dumps({"categories": table, "summary": summary}, indent=1) + "\n")
    if checks_out and checks is not None:  # one line per image, in order: to compare two versions of the check
        checks_out.write_text("".join(json.dumps(c) + "\n" for c in checks))
    return table


def _is_wrong(category: str) -> bool:
    return "inverted" in category or "rotated" in category


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.gate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the gate and write its weights")
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--steps", type=int, default=100, help="batches per epoch")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    e = sub.add_parser("evaluate", help="the share flagged per category of held-out images")
    e.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--out", type=Path, default=None, help="also write the table as JSON")
    e.add_argument("--limit", type=int, default=None, help="test radiographs per data set (default: all)")
    e.add_argument("--checks-out", type=Path, default=None,
                   help="also write each image's check (category, flag, score, reasons) as JSON lines")
    e.add_argument("--decode-for", type=int, default=0, metavar="SIDE",
                   help="decode each image as serving does for a model whose resize starts from SIDE px (28: the "
                        "28 px models; a large JPEG or gray PNG then decodes reduced); default: in full")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.command == "train":
        train(args.epochs, args.steps, args.batch, args.seed, args.out)
    else:
        evaluate(args.weights, args.seed, args.out, args.limit, args.checks_out, args.decode_for)


if __name__ == "__main__":
    main()
