"""Models: named, local directories, GGUF files, tiny test models, and SimpleClassifier."""

from .info import LoadedModel, ModelInfo, count_parameters
from .loader import NAMED_MODELS, load_model
from .simple import SimpleClassifier, accuracy, cross_entropy_loss

__all__ = [
    "NAMED_MODELS",
    "LoadedModel",
    "ModelInfo",
    "SimpleClassifier",
    "accuracy",
    "count_parameters",
    "cross_entropy_loss",
    "load_model",
]
