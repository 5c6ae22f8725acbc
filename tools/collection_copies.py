"""Images shared by the collections that `merged` pools: how many, in which splits, under which labels, and
what the pooled dataset drops (`ml.data.copies`). Diagnostics for docs/data-audit.md, not results.

    python -m tools.collection_copies [--root ../shared/data]

Prints the rows a member relabels from the collection that published them (`label_authority`), and, for each
pair of members, the histogram of each row's best fingerprint correlation with the other
member (the gap around the copy cut shows it is not near a crowd of distinct images), the copies by split
and class, and the rows `merged` drops. About 30 s on two cores (every image is decoded once).
"""

from __future__ import annotations

import argparse
import itertools
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.copies import COPY_CORRELATION, fingerprints, resolve_copies
from ml.data.merged import MEMBERS, VOCABULARY

BINS = [-1.0, 0.8, 0.9, 0.95, 0.97, 0.98, COPY_CORRELATION, 1.01]


def _class_of(source: str, labels: np.ndarray, meta: pd.DataFrame) -> list[str]:
    """A short label per row: the member's own class as the collection files it where it has one (a row that
    takes another collection's label keeps its filed class in `filed_as`), else its positive NIH labels."""
    for column in ("filed_as", "class"):
        if column in meta:
            return meta[column].astype(str).str.lower().tolist()
    names = VOCABULARY
    return ["|".join(n for n, v in zip(names, row, strict=True) if v == 1) or "no finding" for row in labels]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data"), help="the shared data folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    rows = {}
    for name, member in MEMBERS.items():
        labels, meta, paths = member.read(args.root)
        rows[name] = (meta.assign(source=name), fingerprints(paths), _class_of(name, labels, meta), labels)
        print(f"{name}: {len(meta)} rows")
        if "filed_as" in meta:
            moved = meta[meta["class"].astype(str).str.lower() != meta["filed_as"].astype(str).str.lower()]
            for (split, filed, now), n in moved.groupby(["split", "filed_as", "class"]).size().items():
                print(f"  {n:4d} {split} rows filed as {str(filed).lower()!r} take the publisher's {str(now).lower()!r}")

    for a, b in itertools.combinations(MEMBERS, 2):
        (meta_a, fp_a, cls_a, _), (meta_b, fp_b, cls_b, _) = rows[a], rows[b]
        similarity = fp_a @ fp_b.T
        counts, _ = np.histogram(similarity.max(axis=1), bins=BINS)
        edges = [f"<{BINS[1]}"] + [f"{lo}-{hi}" for lo, hi in itertools.pairwise(BINS[1:-1])] + [f">={BINS[-2]}"]
        print(f"\n{a} rows by best correlation with a {b} row: "
              + ", ".join(f"{e}: {c}" for e, c in zip(edges, counts, strict=True)))
        pairs = np.argwhere(similarity >= COPY_CORRELATION)
        tally = Counter((meta_a["split"].iat[i], cls_a[i], meta_b["split"].iat[j], cls_b[j]) for i, j in pairs)
        for (split_a, c_a, split_b, c_b), n in sorted(tally.items()):
            print(f"  {n:4d} copies: {a} {split_a} {c_a!r} = {b} {split_b} {c_b!r}")

    metadata = pd.concat([r[0] for r in rows.values()], ignore_index=True)
    prints = np.concatenate([r[1] for r in rows.values()])
    labels = np.concatenate([r[3] for r in rows.values()])
    keep, resolved, dropped = resolve_copies(metadata, labels, prints, {m: MEMBERS[m].authority for m in MEMBERS})
    print(f"\nmerged drops {len(dropped)} of {len(metadata)} rows:")
    for (source, split, copy_of), n in dropped.groupby(["source", "split", "copy_of"]).size().items():
        print(f"  {n:4d} {source} {split} rows (copies of {copy_of} images)")
    gained = np.isnan(labels) & ~np.isnan(resolved) & keep[:, None]
    for (source, split), group in metadata[gained.any(axis=1)].groupby(["source", "split"]):
        names = sorted({VOCABULARY[j] for j in np.flatnonzero(gained[group.index].any(axis=0))})
        print(f"  {len(group):4d} {source} {split} rows kept gain {', '.join(names)} from the copies dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
