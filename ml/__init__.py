"""Chest X-ray ML library: datasets, transforms, models, training, evaluation and explanations.

Pure library: no web, database, Celery or environment access. Configuration comes in as plain
objects (see `ml.config`).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
