"""The `cxr` command line: training and evaluation (ml/), the registry (db, keys) and the service."""
