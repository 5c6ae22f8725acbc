"""Imports deferred to first use, made one at a time.

torchvision (about 2.5 s: it loads `torch._dynamo`) and pytorch-grad-cam (which imports torchvision) are imported
when a model or a map first needs them, not when the process starts. In the API that first use can come on
two threads at once (a request loading a ResNet while the runtime trial of another model computes a map), and
both packages import themselves circularly (`torchvision.transforms` and `torchvision.models`): two threads
importing them together can each find the other's module half initialised, and one gets an ImportError
(seen as a 500 on `/predict` during `make run`). `locked_import` imports under one process-wide lock, so the
first import finishes before any other starts; later calls find the module in `sys.modules`.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

IMPORT_LOCK = threading.RLock()


def locked_import(name: str) -> ModuleType:
    """`importlib.import_module(name)` under `IMPORT_LOCK`."""
    with IMPORT_LOCK:
        return importlib.import_module(name)
