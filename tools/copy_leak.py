"""How much copies shared across collections flatter a merged model's test figures: each member's test rows split
into those with a copy among another member's training or validation rows (which a model trained before
`ml.data.copies` learnt from or was chosen by) and those without.

    python -m tools.copy_leak --checkpoint models/all-cxr/model.pt [--recipe recipes/all-cxr-merged.toml]

Reads the test split: run it for a model whose test figures are already read, to correct them, never to choose.
Prints per member the AUROC of the labels it annotates and, for the 3-class member, the macro-F1 of the
normal / pneumonia / tuberculosis decision, on all test rows, on those without a copy and on those with one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ml.data.copies import copy_pairs, fingerprints
from ml.data.merged import MEMBERS
from tools.quality import (
    DEFAULT_SHARED,
    auroc_with_mean,
    load_recipe,
    predict_split,
    resolve_data_root,
    three_class,
)


def copied_test_rows(root: Path, members: list[str]) -> dict[str, set[str]]:
    """Per member, the paths of its test rows that copy a training or validation row of another member."""
    rows = {m: MEMBERS[m].read(root) for m in members}
    prints = {m: fingerprints(paths) for m, (_, _, paths) in rows.items()}
    out: dict[str, set[str]] = {}
    for m, (_, meta, paths) in rows.items():
        test = np.flatnonzero(meta["split"].to_numpy() == "test")
        hit: set[str] = set()
        for other, (_, other_meta, _) in rows.items():
            if other == m:
                continue
            seen = np.flatnonzero(other_meta["split"].to_numpy() != "test")
            hit |= {paths[test[i]] for i, _ in copy_pairs(prints[m][test], prints[other][seen])}
        out[m] = hit
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.copy_leak", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a model trained on the merged dataset")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/all-cxr-merged.toml"))
    parser.add_argument("--data", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    args = parser.parse_args(argv)

    recipe = load_recipe(args.recipe)
    if recipe["dataset"] != "merged":
        parser.error(f"{args.recipe} does not train on the merged dataset")
    root = resolve_data_root(recipe["data_root"], args.data)
    options = recipe.get("dataset_options", {})
    members = list(options.get("members", MEMBERS))
    copied = copied_test_rows(root, members)
    pred = predict_split(args.checkpoint, recipe, root, "test")
    print(f"{args.checkpoint}: test rows with a copy among another member's training or validation rows")
    for member in members:
        rows = pred["source"] == member
        has_copy = np.array([p in copied[member] for p in pred["path"]])
        for name, pick in (("all", rows), ("without a copy", rows & ~has_copy), ("with a copy", rows & has_copy)):
            if not pick.any():
                print(f"  {member:10s} {name:15s} n=0")
                continue
            sub = pred | {"probs": pred["probs"][pick], "labels": pred["labels"][pick]}
            *per_label, mean = auroc_with_mean(sub["probs"], sub["labels"])
            known = [(label, a) for label, a in zip(pred["pathologies"], per_label, strict=True) if np.isfinite(a)]
            line = f"  {member:10s} {name:15s} n={int(pick.sum()):4d}  mean AUROC {mean:.3f}"
            if len(known) <= 2:
                line += "  (" + ", ".join(f"{label} {a:.3f}" for label, a in known) + ")"
            three = three_class(sub)
            if three is not None:
                line += f"  3-class macro-F1 {three['macro_f1']:.3f}"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
