"""Training: `fit` (loop.py), losses, and the `Reporter` interface the worker implements. Training uses
`ml.evaluation` (validation, the final report); evaluation never uses training."""
