"""The model architectures, registered by name (see `ml.models.factory`).

Each family module registers its entrypoints when imported; the imports below are the list of what exists.
Adding an architecture is one file, plus its line here.
"""

from __future__ import annotations

# the families, each registering its entrypoints
from ml.models import cnn5, densenet, ensemble, resnet, small, squeezenet, vgg, vit  # noqa: F401
from ml.models.base import CXRModel, ModelConfig
from ml.models.factory import create_model, get_model_config, list_models, register_alias, register_model

__all__ = ["CXRModel", "ModelConfig", "create_model", "get_model_config", "list_models", "register_alias",
           "register_model"]
