"""Label audit of the 3-class Normal / Pneumonia / Tuberculosis data: why the shipped model stops short of
macro-F1 0.90. Diagnostics, not claimed results.

    python -m tools.cxr3class_audit                       # ~1-2 min on 2 CPU cores
    python -m tools.cxr3class_audit --data /elsewhere/shared/data

Three measurements on the real images (`shared/data/cxr3class-normal-pneumonia-tb`), each image tagged with
its sub-collection (class and original size from the data set's index, e.g. `tuberculosis-512`):

1. Copies filed under two classes: pairs with identical decoded pixels, and near-identical pairs (RMS
   difference of 32x32 area-downscaled thumbnails under `NEAR_RMS` grey levels), per class pair and
   sub-collection pair; how many the index's `conflicting_label` flag marks, and how many the project's
   split (the recipe's `folder` adapter with its average-hash duplicate groups) drops.
2. Linear separability of sub-collections: a logistic-regression probe (L2 as scikit-learn's default,
   C=1) on 16x16 pixels and on the shipped model's pooled features, out-of-fold AUROC over 5 folds that
   keep near-duplicate groups together.
3. The shipped model on the project's split (with the recipe's labels, section 4): accuracy per
   sub-collection and split, and test macro-F1 as shipped, as if every `tuberculosis-512` test image were
   right, and without them.
4. The images this collection took from Kermany et al.'s (`ml.data.copies.published_classes`, as the recipe's
   `label_authority` finds them): how many, under which class here and in Kermany's published labels, and
   test macro-F1 on the labels as filed, with the copies whose classes disagree scored against Kermany's class
   (the recipe's labels), left out, and relabelled with the `tuberculosis-512` rows left out as well.

Raw numbers go to bench/results/cxr3class_audit.json; the model card (tools/cards.py) cites them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import REPO_ROOT, write_result

DATA_DIR = "cxr3class-normal-pneumonia-tb"
IMAGES = "parth261204_256px"
KERMANY = "kermany-pediatric-pneumonia"  # the collection that published the 3-class set's children's images
INDEX = "index_parth261204.csv"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data"
RECIPE = REPO_ROOT / "recipes" / "cxr3class-normal-pneumonia-tb.toml"
CHECKPOINT = REPO_ROOT / "models" / "cxr3class" / "model.pt"
RESULT_NAME = "cxr3class_audit"
SUSPECT = "tuberculosis-512"
THUMB = 32  # thumbnail side for near-duplicates
PROBE_SIDE = 16  # pixels per side for the pixel probe
NEAR_RMS = 4.0  # grey levels (of 255): thumbnails closer than this are the same picture
FOLDS = 5

log = logging.getLogger(__name__)


# --- pure pieces ---------------------------------------------------------------------------------


def sub_collection(label: str, width: int, height: int) -> str:
    """`label-SIZE` for square originals of a common size, else `label-other` (how the sources differ)."""
    return f"{label}-{width}" if width == height and width in (256, 512, 1024) else f"{label}-other"


def pixel_key(image: np.ndarray) -> str:
    """Digest of a decoded image (8-bit grey levels and shape): equal for identical pixels only."""
    grey = np.rint(np.asarray(image, dtype=np.float64) * 255).astype(np.uint8)
    return hashlib.blake2b(str(grey.shape).encode() + grey.tobytes(), digest_size=16).hexdigest()


def pairs_from_keys(keys: Sequence[str]) -> list[tuple[int, int]]:
    """Every (i, j), i < j, of rows that share a key."""
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    return [(a, b) for rows in members.values() for n, a in enumerate(rows) for b in rows[n + 1:]]


def near_pairs(thumbs: np.ndarray, max_rms: float) -> list[tuple[int, int]]:
    """Every (i, j), i < j, whose thumbnails (N, ...) differ by an RMS under `max_rms`."""
    x = thumbs.reshape(len(thumbs), -1).astype(np.float64)
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0) / x.shape[1]
    i, j = np.nonzero(np.triu(d2 < max_rms**2, k=1))
    return list(zip(i.tolist(), j.tolist(), strict=True))


def _pair_name(a: str, b: str) -> str:
    return "/".join(sorted((a, b)))


def cross_class_summary(
    pairs: Sequence[tuple[int, int]],
    labels: Sequence[str],
    subs: Sequence[str],
    flagged: Sequence[bool],
    dropped: Sequence[bool],
) -> dict[str, Any]:
    """Pairs whose two images carry different classes, counted per class pair and sub-collection pair.

    A pair is `flagged` when the index flags both images, `dropped` when the split drops both; `images`
    counts, per sub-collection, the images with at least one copy in another class.
    """
    cross = [(i, j) for i, j in pairs if labels[i] != labels[j]]
    by_class: dict[str, dict[str, int]] = {}
    by_sub: Counter[str] = Counter()
    with_copy: set[int] = set()
    for i, j in cross:
        c = by_class.setdefault(_pair_name(labels[i], labels[j]),
                                {"pairs": 0, "flagged": 0, "unflagged": 0, "dropped_by_split": 0})
        c["pairs"] += 1
        both_flagged = bool(flagged[i]) and bool(flagged[j])
        c["flagged" if both_flagged else "unflagged"] += 1
        c["dropped_by_split"] += int(bool(dropped[i]) and bool(dropped[j]))
        by_sub[_pair_name(subs[i], subs[j]) + (" (flagged)" if both_flagged else " (unflagged)")] += 1
        with_copy.update((i, j))
    totals = {k: sum(c[k] for c in by_class.values()) for k in ("pairs", "flagged", "unflagged", "dropped_by_split")}
    images = Counter(subs[i] for i in with_copy)
    return {"total": totals, "by_class_pair": dict(sorted(by_class.items())),
            "by_sub_collection_pair": dict(sorted(by_sub.items())), "images_with_copy_in_other_class": dict(images)}


def fold_ids(y: np.ndarray, groups: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    """A fold per row, stratified by `y`, rows of one group in one fold (the project's group split)."""
    from ml.data.splits import group_split

    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    onehot = np.eye(2, dtype=np.float32)[np.asarray(y, dtype=int)]
    names = group_split(groups, onehot, {str(k): 1 / folds for k in range(folds)}, seed)
    return names.astype(int)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, max_iter: int = 50) -> tuple[np.ndarray, float]:
    """L2 logistic regression, loss sum(BCE) + ||w||^2 / (2C) as scikit-learn's (bias not penalised),
    by Newton's method; returns (w, b)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    penalty = np.full(d + 1, 1 / c)
    penalty[-1] = 0.0
    theta = np.zeros(d + 1)
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-np.clip(xb @ theta, -30, 30)))
        grad = xb.T @ (p - y) + penalty * theta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def probe_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, folds: int = FOLDS,
                seed: int = 0) -> float:
    """Out-of-fold AUROC of a logistic-regression probe separating y=1 from y=0 (features standardised
    on each training fold). 0.5 is chance; near 1 means a linear rule on these features tells them apart."""
    from ml.evaluation.metrics import rank_auroc

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=int)
    fold = fold_ids(y, groups, folds, seed)
    scores = np.zeros(len(y))
    for k in np.unique(fold):
        train, held = fold != k, fold == k
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        w, b = fit_logistic((x[train] - mean) / std, y[train])
        scores[held] = ((x[held] - mean) / std) @ w + b
    return float(rank_auroc(scores[:, None], y[:, None].astype(np.float64))[0])


def group_accuracy(truth: np.ndarray, pred: np.ndarray, groups: Sequence[str], splits: Sequence[str]
                   ) -> dict[str, dict[str, dict[str, float]]]:
    """split -> group -> {n, correct, accuracy}."""
    table = pd.DataFrame({"ok": np.asarray(truth) == np.asarray(pred), "group": list(groups), "split": list(splits)})
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (split, group), rows in table.groupby(["split", "group"], sort=True):
        out.setdefault(str(split), {})[str(group)] = {"n": len(rows), "correct": int(rows["ok"].sum()),
                                                      "accuracy": float(rows["ok"].mean())}
    return out


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean over classes of F1 (a class never predicted nor present counts 0)."""
    f1 = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (truth == c))
        denom = np.sum(pred == c) + np.sum(truth == c)
        f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


def f1_diagnostics(truth: np.ndarray, pred: np.ndarray, suspect: np.ndarray, n_classes: int) -> dict[str, float]:
    """Macro-F1 as predicted, with every `suspect` row set right, and with the suspect rows left out."""
    fixed = np.where(suspect, truth, pred)
    return {"as_shipped": macro_f1(truth, pred, n_classes),
            "suspect_all_right": macro_f1(truth, fixed, n_classes),
            "suspect_excluded": macro_f1(truth[~suspect], pred[~suspect], n_classes)}


def publisher_diagnostics(truth: np.ndarray, pred: np.ndarray, publisher: np.ndarray, suspect: np.ndarray,
                          n_classes: int) -> dict[str, Any]:
    """Macro-F1 where another collection published some rows under another class.

    `publisher` holds, per row, the class index its copy carries in the publishing collection, or -1 for a
    row without a copy there. Rows whose two classes disagree are scored as this collection files them
    (`as_filed`), against the publisher's class (`conflicts_relabelled`), left out (`conflicts_excluded`),
    and relabelled with the `suspect` rows left out too (`conflicts_relabelled_suspect_excluded`);
    `conflicts_predicted` counts the model's classes for those rows.
    """
    publisher = np.asarray(publisher)
    conflict = (publisher >= 0) & (publisher != truth)
    relabelled = np.where(conflict, publisher, truth)
    clean = ~np.asarray(suspect, dtype=bool)
    return {"conflicts": int(conflict.sum()),
            "conflicts_predicted": {int(c): int(n) for c, n in sorted(Counter(pred[conflict].tolist()).items())},
            "as_filed": macro_f1(truth, pred, n_classes),
            "conflicts_relabelled": macro_f1(relabelled, pred, n_classes),
            "conflicts_excluded": macro_f1(truth[~conflict], pred[~conflict], n_classes),
            "conflicts_relabelled_suspect_excluded": macro_f1(relabelled[clean], pred[clean], n_classes)}


def rest_accuracy(accuracy: dict[str, dict[str, dict[str, float]]], leave_out: str) -> dict[str, float]:
    """Per split, the accuracy over every group but `leave_out`, pooled."""
    out = {}
    for split, groups in accuracy.items():
        rest = [g for name, g in groups.items() if name != leave_out]
        n = sum(g["n"] for g in rest)
        out[split] = sum(g["correct"] for g in rest) / n if n else float("nan")
    return out


def conclusion(result: dict[str, Any], target: float = 0.90) -> str:
    """One line that follows from the figures (never written by hand)."""
    probes = result["probes"]["pixels"]
    suspect_vs = [v for k, v in probes.items() if k.startswith("normal") and SUSPECT in k]
    control = probes.get("control", float("nan"))
    acc = result["per_group_accuracy"]
    suspect_acc = [acc[s][SUSPECT]["accuracy"] for s in ("train", "val", "test") if SUSPECT in acc.get(s, {})]
    rest = [v for s, v in rest_accuracy(acc, SUSPECT).items() if s in ("train", "val", "test")]
    f1 = result["macro_f1_test"]
    near = result["duplicates"]["near"]
    copies = near["images_with_copy_in_other_class"].get(SUSPECT, 0)
    n_suspect = result["sub_collections"].get(SUSPECT, 0)
    inseparable = bool(suspect_vs) and max(suspect_vs) < 0.65 and control > 0.85
    dropped_all = near["total"]["dropped_by_split"] == near["total"]["pairs"]
    parts = [f"{SUSPECT}: {copies} of {n_suspect} images have a copy filed as another class "
             f"({near['total']['unflagged']} cross-class pairs not flagged by the index; the split drops "
             f"{'all' if dropped_all else near['total']['dropped_by_split']} of {near['total']['pairs']});"]
    parts.append(f"a linear probe on pixels tells it from normal images at AUROC "
                 f"{', '.join(f'{v:.3f}' for v in suspect_vs)} (control {control:.3f}), so it "
                 f"{'looks like' if inseparable else 'does not look like'} normal images filed as TB;")
    parts.append(f"the model gets {min(suspect_acc):.0%}-{max(suspect_acc):.0%} of it right "
                 f"(the rest of the data {min(rest):.0%}-{max(rest):.0%} per split);")
    blocked = f1["suspect_all_right"] < target
    parts.append(f"test macro-F1 {f1['as_shipped']:.3f}, {f1['suspect_all_right']:.3f} if all of it were right, "
                 f"{f1['suspect_excluded']:.3f} without it: "
                 + ("these labels explain part of the gap to "
                    f"{target:.2f}, the model the rest" if blocked else
                    f"with those labels right the {target:.2f} target would be met"))
    return "conclusion: " + " ".join(parts)


# --- the real data -------------------------------------------------------------------------------


def _thumb(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(image * 255, (side, side), interpolation=cv2.INTER_AREA)


def _components(n: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Connected-component id per row for the given pairs (union-find)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[find(i)] = find(j)
    return np.array([find(i) for i in range(n)])


def load_index(root: Path) -> pd.DataFrame:
    index = pd.read_csv(root / INDEX)
    index["sub"] = [sub_collection(*r) for r in index[["label", "orig_width", "orig_height"]].itertuples(index=False)]
    index["flagged"] = index["conflicting_label"].astype(str).str.lower() == "true"
    return index


def project_split(images_root: Path) -> pd.DataFrame:
    """The recipe's dataset (adapter, options, split) as rows: path relative to the images, split, class."""
    import tomllib

    from ml.data import create_dataset

    recipe = tomllib.loads(RECIPE.read_text())
    ds = create_dataset(recipe["dataset"], images_root, **recipe.get("dataset_options", {}))
    meta = ds.metadata
    rel = [str(Path(p).relative_to(images_root)) for p in meta["path"]]
    return pd.DataFrame({"path": rel, "split": meta["split"].to_numpy(), "class": meta["class"].to_numpy()})


def model_outputs(images: list[np.ndarray], checkpoint: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels, probabilities (N, L) and penultimate features (what enters the model's head), in batches."""
    import torch

    from ml.inference import LoadedModel

    loaded = LoadedModel.from_checkpoint(checkpoint)
    loaded.model.eval()
    probs, feats = [], []
    hook = loaded.model.head().register_forward_pre_hook(lambda _m, args: feats.append(args[0].flatten(1).numpy()))
    try:
        with torch.inference_mode():
            for start in range(0, len(images), 256):
                logits = loaded.model(loaded.preprocess.batch(images[start:start + 256]))
                probs.append(torch.softmax(logits.float(), dim=1).numpy())
    finally:
        hook.remove()
    return loaded.labels, np.concatenate(probs), np.concatenate(feats).astype(np.float64)


def probe_pairs(subs: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (negative rows, positive rows) masks for the probes."""
    normal = np.char.startswith(subs.astype(str), "normal")
    tb = np.char.startswith(subs.astype(str), "tuberculosis")
    return {
        f"normal-512 vs {SUSPECT}": (subs == "normal-512", subs == SUSPECT),
        f"normal-1024 vs {SUSPECT}": (subs == "normal-1024", subs == SUSPECT),
        f"normal (all) vs {SUSPECT}": (normal, subs == SUSPECT),
        "control": (normal, tb & (subs != SUSPECT)),  # TB of the other sub-collections vs every normal
    }


def run(shared: Path) -> dict[str, Any]:
    from ml.data.copies import published_classes
    from ml.imaging import read_image

    root = shared / DATA_DIR
    images_root = root / IMAGES
    index = load_index(root)
    started = time.perf_counter()
    images = [read_image(images_root / p) for p in index["path"]]
    log.info("decoded %d images in %.1f s", len(images), time.perf_counter() - started)
    labels, subs, flagged = index["label"].tolist(), index["sub"].to_numpy(), index["flagged"].to_numpy()

    split = project_split(images_root)
    index = index.merge(split[["path", "split", "class"]], on="path", how="left")
    dropped = index["split"].isna().to_numpy()

    # 1. copies across classes
    exact = pairs_from_keys([pixel_key(im) for im in images])
    thumbs = np.stack([_thumb(im, THUMB) for im in images])
    near = near_pairs(thumbs, NEAR_RMS)
    duplicates = {"exact": cross_class_summary(exact, labels, subs, flagged, dropped),
                  "near": cross_class_summary(near, labels, subs, flagged, dropped),
                  "near_rms_threshold": NEAR_RMS, "thumbnail": THUMB,
                  "near_pairs_by_threshold": {t: len(near_pairs(thumbs, t)) for t in (1, 2, 4, 8, 16)},
                  "index_flagged_images": int(flagged.sum()), "dropped_by_split_images": int(dropped.sum())}

    # 2. separability: pixels and the shipped model's features; folds keep near-copies together
    model_labels, probs, feats = model_outputs(images, CHECKPOINT)
    groups = _components(len(images), near)
    has_copy = np.zeros(len(images), dtype=bool)
    for i, j in near:
        if labels[i] != labels[j]:
            has_copy[[i, j]] = True
    pixels = thumbs.reshape(len(thumbs), PROBE_SIDE, THUMB // PROBE_SIDE, PROBE_SIDE, -1).mean(axis=(2, 4))
    probes: dict[str, dict[str, float]] = {"pixels": {}, "pixels_without_cross_class_copies": {}, "model_features": {}}
    sizes: dict[str, list[int]] = {}
    for name, (neg, pos) in probe_pairs(subs).items():
        rows = neg | pos
        y = pos[rows].astype(int)
        sizes[name] = [int(neg.sum()), int(pos.sum())]
        probes["pixels"][name] = probe_auroc(pixels.reshape(len(pixels), -1)[rows], y, groups[rows])
        probes["model_features"][name] = probe_auroc(feats[rows], y, groups[rows])
        clean = rows & ~has_copy
        probes["pixels_without_cross_class_copies"][name] = probe_auroc(
            pixels.reshape(len(pixels), -1)[clean], pos[clean].astype(int), groups[clean])
    probes["sizes_negative_positive"] = sizes  # type: ignore[assignment]

    # 3. the shipped model on the project's split
    kept = ~dropped
    # the recipe's labels (Kermany's class for its copies, section 4) where the split keeps the row
    truth = np.array([model_labels.index(c) for c in index["class"].str.lower().fillna(index["label"])])
    pred = probs.argmax(axis=1)
    accuracy = group_accuracy(truth[kept], pred[kept], subs[kept], index["split"][kept].tolist())
    test = (index["split"] == "test").to_numpy()
    f1 = f1_diagnostics(truth[test], pred[test], subs[test] == SUSPECT, len(model_labels))

    # 4. the Kermany et al. copies: the class their publisher gave them
    kermany = published_classes([images_root / p for p in index["path"]], shared / KERMANY)
    publisher = np.array([model_labels.index(k) if k in model_labels else -1 for k in kermany])
    filed = np.array([model_labels.index(c) for c in labels])
    with_copy = publisher >= 0
    copies = {"images": int(with_copy.sum()),
              "by_split_class_and_kermany_class": {
                  f"{s} {c} = kermany {k}": n for (s, c, k), n in sorted(Counter(
                      (str(s), labels[i], kermany[i]) for i, s in enumerate(index["split"].fillna("dropped"))
                      if with_copy[i]).items())},
              "test": publisher_diagnostics(filed[test], pred[test], publisher[test], subs[test] == SUSPECT,
                                            len(model_labels))}
    copies["test"]["conflicts_predicted"] = {model_labels[c]: n for c, n in copies["test"]["conflicts_predicted"].items()}
    metrics = CHECKPOINT.parent / "metrics.json"
    if metrics.exists():  # a check that this is the split and model the card measured
        f1["card"] = json.loads(metrics.read_text())["test"]["macro_f1"]

    result = {
        "data": str(root), "checkpoint": str(CHECKPOINT.relative_to(REPO_ROOT)), "recipe": str(RECIPE.relative_to(REPO_ROOT)),
        "images": len(images), "sub_collections": dict(Counter(subs.tolist())),
        "split_sizes": dict(Counter(index["split"].fillna("dropped").tolist())),
        "sub_collections_by_split": {s: dict(Counter(subs[(index["split"] == s).to_numpy()].tolist()))
                                     for s in ("train", "val", "test")},
        "duplicates": duplicates, "probes": probes, "per_group_accuracy": accuracy,
        "macro_f1_test": f1, "kermany_copies": copies, "note": "diagnostics of the data and the shipped model, not claimed results",
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["conclusion"] = conclusion(result)
    return result


# --- output --------------------------------------------------------------------------------------


def print_result(r: dict[str, Any]) -> None:
    print(f"\n== cxr3class label audit ({r['images']} images; split {r['split_sizes']})")
    print("   sub-collections: " + ", ".join(f"{k} {v}" for k, v in sorted(r["sub_collections"].items())))
    d = r["duplicates"]
    print(f"\n1. copies filed under two classes (index flags {d['index_flagged_images']} images; "
          f"the split drops {d['dropped_by_split_images']})")
    for level, what in (("exact", "identical decoded pixels"),
                        ("near", f"near-identical: {d['thumbnail']} px thumbnails within RMS {d['near_rms_threshold']}")):
        s = d[level]
        t = s["total"]
        print(f"   {what}: {t['pairs']} cross-class pairs, {t['flagged']} flagged by the index, "
              f"{t['unflagged']} not; {t['dropped_by_split']} dropped by the split")
        for name, c in s["by_class_pair"].items():
            print(f"      {name:<24} {c['pairs']:>4} pairs, {c['flagged']:>3} flagged, {c['unflagged']:>3} unflagged, "
                  f"{c['dropped_by_split']:>3} dropped")
        for name, n in s["by_sub_collection_pair"].items():
            print(f"      {name:<48} {n:>4}")
        if level == "near":
            print("      pairs (any classes) by RMS threshold: "
                  + ", ".join(f"{t}: {n}" for t, n in d["near_pairs_by_threshold"].items()))
        print("      images with a copy in another class: "
              + ", ".join(f"{k} {v}/{r['sub_collections'][k]}" for k, v in sorted(s["images_with_copy_in_other_class"].items())))
    p = r["probes"]
    print(f"\n2. linear probe, out-of-fold AUROC ({FOLDS} folds, near-copies kept together)")
    print(f"   {'pair':<32}{'n (neg/pos)':>14}{'pixels':>9}{'no copies':>11}{'model':>8}")
    for name, (nn, npos) in p["sizes_negative_positive"].items():
        print(f"   {name:<32}{f'{nn}/{npos}':>14}{p['pixels'][name]:>9.3f}"
              f"{p['pixels_without_cross_class_copies'][name]:>11.3f}{p['model_features'][name]:>8.3f}")
    print("   (control: tuberculosis of every other sub-collection vs every normal)")
    print("\n3. shipped model, accuracy per sub-collection (diagnostic)")
    acc = r["per_group_accuracy"]
    groups = sorted({g for s in acc.values() for g in s})
    print(f"   {'sub-collection':<22}" + "".join(f"{s:>18}" for s in ("train", "val", "test")))
    for g in groups:
        cells = []
        for s in ("train", "val", "test"):
            c = acc.get(s, {}).get(g)
            cells.append(f"{c['accuracy']:.1%} of {c['n']}" if c else "-")
        print(f"   {g:<22}" + "".join(f"{c:>18}" for c in cells))
    f = r["macro_f1_test"]
    print(f"   test macro-F1: as shipped {f['as_shipped']:.3f}; if every {SUSPECT} image were right "
          f"{f['suspect_all_right']:.3f}; {SUSPECT} left out {f['suspect_excluded']:.3f} (diagnostics, not results; "
          f"the card's figure: {f.get('card', float('nan')):.3f})")
    k = r.get("kermany_copies")
    if k:
        t = k["test"]
        print(f"\n4. images copied from Kermany et al.'s collection: {k['images']}")
        for name, n in k["by_split_class_and_kermany_class"].items():
            print(f"   {n:4d} {name}")
        print(f"   test rows filed under another class than Kermany's: {t['conflicts']}; the model calls them "
              + ", ".join(f"{c} {n}" for c, n in t["conflicts_predicted"].items()))
        print(f"   test macro-F1: on the labels as filed {t['as_filed']:.3f}; those rows scored against Kermany's "
              f"class (the recipe's labels) {t['conflicts_relabelled']:.3f}; left out {t['conflicts_excluded']:.3f}; "
              f"relabelled and {SUSPECT} left out {t['conflicts_relabelled_suspect_excluded']:.3f}")
    print("\n" + r["conclusion"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cxr3class_audit", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(2)
    result = run(args.data)
    print_result(result)
    print(f"\nraw: {write_result(RESULT_NAME, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
