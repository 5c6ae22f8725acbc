"""Serving registry models. A request reads one way down: `predictor` (a request's path) -> `cache` (models by
reference, kept current) -> `batching` (micro-batches) -> `pool` (threads) -> `served` (a loaded version: its
runtime, the trial that chose it, its Grad-CAM). Beside them: `inputs` (uploads), `targets` (Grad-CAM labels),
`metrics`, `errors`. Routes stay thin and call into here."""
