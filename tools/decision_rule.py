"""Judge a multi-class decision rule fitted for macro-F1 by repeated two-fold cross-validation on validation.

    python -m tools.decision_rule --model cxr3class                      # the shipped model
    python -m tools.decision_rule --recipe recipes/X.toml --run runs/Y   # a candidate

Decision weights (`ml.evaluation.metrics.fit_decision_weights`: the decision is the class of largest
`p_k * w_k`) fitted and scored on the same validation rows would flatter themselves. Here the validation rows
are split `--repeats` times into two halves stratified by class (seed `--seed`); the weights are fitted on
one half and scored on the other, beside plain arg-max on that same half. Printed: the mean and spread of
(fitted - arg-max) macro-F1 over the held-out halves, and the weights fitted on all validation rows with the
macro-F1 they reach there (fitted and scored on the same rows: the optimistic figure the cross-validation
corrects). The test split is not read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, write_result
from tools.quality import DEFAULT_SHARED, load_recipe, predict_split, resolve_data_root, shipped_models


def stratified_halves(truth: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of two halves, each class split as evenly as its count allows."""
    first, second = [], []
    for c in np.unique(truth):
        rows = rng.permutation(np.flatnonzero(truth == c))
        cut = len(rows) // 2 + int(rng.integers(0, 2)) * (len(rows) % 2)  # an odd class gives its extra row at random
        first.append(rows[:cut])
        second.append(rows[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def cross_validate(probs: np.ndarray, labels: np.ndarray, repeats: int = 50, seed: int = 0) -> dict[str, Any]:
    """Held-out macro-F1 of fitted weights against arg-max on the same halves, over `repeats` two-fold splits."""
    from ml.evaluation.metrics import fit_decision_weights, multiclass_macro_f1, weighted_argmax

    k = probs.shape[1]
    truth = np.nan_to_num(labels).argmax(axis=1)
    rng = np.random.default_rng(seed)
    fitted, plain = [], []
    for _ in range(repeats):
        halves = stratified_halves(truth, rng)
        for fit_on, score_on in (halves, halves[::-1]):
            w = fit_decision_weights(probs[fit_on], labels[fit_on])
            fitted.append(multiclass_macro_f1(truth[score_on], weighted_argmax(probs[score_on], w), k))
            plain.append(multiclass_macro_f1(truth[score_on], weighted_argmax(probs[score_on], None), k))
    gain = np.asarray(fitted) - np.asarray(plain)
    weights = fit_decision_weights(probs, labels)
    return {"repeats": repeats, "seed": seed, "halves": len(gain), "rows": len(truth),
            "argmax_macro_f1": float(np.mean(plain)), "fitted_macro_f1": float(np.mean(fitted)),
            "gain_mean": float(gain.mean()), "gain_sd": float(gain.std(ddof=1)) if len(gain) > 1 else 0.0,
            "gain_positive_share": float((gain > 0).mean()), "gain_negative_share": float((gain < 0).mean()),
            "weights_all_val": [float(w) for w in weights],
            "all_val_argmax": multiclass_macro_f1(truth, weighted_argmax(probs, None), k),
            "all_val_fitted": multiclass_macro_f1(truth, weighted_argmax(probs, weights), k)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.decision_rule", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model name from models/manifest.toml")
    parser.add_argument("--recipe", type=Path, help="with --run: a candidate by its recipe")
    parser.add_argument("--run", type=Path, help="a finished run folder (its model.pt)")
    parser.add_argument("--data", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--repeats", type=int, default=50, help="two-fold splits of the validation rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.recipe):
        parser.error("give --model NAME, or --recipe RECIPE with --run RUN")
    if args.model:
        models = shipped_models()
        if args.model not in models:
            parser.error(f"unknown model {args.model!r}; with a recipe in models/manifest.toml: {', '.join(models)}")
        recipe_path = REPO_ROOT / models[args.model]["recipe"]
        checkpoint = args.run / "model.pt" if args.run else REPO_ROOT / "models" / models[args.model]["path"]
    else:
        if not args.run:
            parser.error("--recipe needs --run")
        recipe_path, checkpoint = args.recipe, args.run / "model.pt"
    recipe = load_recipe(recipe_path)
    val = predict_split(checkpoint, recipe, resolve_data_root(recipe["data_root"], args.data), "val")
    if val["task"] != "multiclass":
        parser.error(f"{checkpoint} is a {val['task']} model: decision weights are for multi-class models")
    result = cross_validate(val["probs"], val["labels"], args.repeats, args.seed)
    names = val["pathologies"]
    print(f"{checkpoint}: {result['rows']} validation rows, {result['repeats']} two-fold splits (seed {result['seed']})")
    print(f"  held-out macro-F1: arg-max {result['argmax_macro_f1']:.4f}, fitted {result['fitted_macro_f1']:.4f}; "
          f"gain {result['gain_mean']:+.4f} (sd {result['gain_sd']:.4f}; better on "
          f"{result['gain_positive_share']:.0%} of halves, worse on {result['gain_negative_share']:.0%})")
    print("  weights fitted on all validation rows: "
          + ", ".join(f"{n} {w:.3f}" for n, w in zip(names, result["weights_all_val"], strict=True))
          + f" (all-validation macro-F1 {result['all_val_argmax']:.4f} -> {result['all_val_fitted']:.4f}, fitted "
          "and scored on the same rows)")
    print(f"raw: {write_result('decision-rule', {'checkpoint': str(checkpoint), 'labels': names, **result})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
