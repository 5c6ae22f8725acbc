"""Serving registry models: the predictor with its model cache, upload handling, the inference pool and
the service's metrics. Routes stay thin and call into here."""
