"""Evaluation: a model over a split (`predict`), metrics in pairs (pure functions and accumulators), plots,
and `evaluate_checkpoint` for a saved model on a dataset split."""
