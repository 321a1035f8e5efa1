"""Models: named, local directories, GGUF files and tiny test models."""

from .info import LoadedModel, ModelInfo, count_parameters
from .loader import NAMED_MODELS, load_model

__all__ = [
    "NAMED_MODELS",
    "LoadedModel",
    "ModelInfo",
    "count_parameters",
    "load_model",
]
