"""metapeft-optuna: meta-learned PEFT method and hyperparameter selection for Optuna.

Importing this package first preloads an optimized BLAS for MLX on Linux (see
:mod:`metapeft_optuna._blas`); the public names below are imported lazily so that
``import metapeft_optuna`` stays cheap. The seed's meta-learning research API (MAML,
``TaskDistribution``, ``SimpleClassifier``, ...) is :mod:`metapeft_optuna.research`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._blas import preload_blas

BLAS = preload_blas()

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "MetaLearningError": "errors",
    "TaskSamplingError": "errors",
    "AdapterCreationError": "errors",
    "ConfigError": "errors",
    "DataFormatError": "errors",
    "ModelLoadError": "errors",
    "NotFittedError": "errors",
    "TrialFailedError": "errors",
    "UnknownTaskError": "errors",
    # models
    "load_model": "models",
    "ModelInfo": "models",
    "LoadedModel": "models",
    # tasks
    "Task": "tasks",
    "Example": "tasks",
    "load_task": "tasks",
    "list_tasks": "tasks",
    "TaskCharacteristics": "tasks",
    # PEFT methods
    "PEFTMethod": "peft",
    "AdapterFactory": "peft",
    "load_adapter": "peft",
    # training
    "fine_tune": "training",
    "PEFTObjective": "training",
    "PEFTSearchSpace": "training",
    "TrainingBudget": "training",
    "TrialResult": "training",
    # meta-learning
    "MetaPEFTSystem": "meta",
    "MethodRecommendation": "meta",
    "ExperienceBuffer": "meta",
    "PEFTExperience": "meta",
    "TaskEmbeddingNetwork": "meta",
    "MethodSelectionNetwork": "meta",
    "MetaHyperparameterOptimizer": "meta",
    "SearchPolicy": "meta",
    "PEFTSurrogate": "meta",
    "ReptileLearner": "meta",
    # Optuna plugin
    "MetaPEFTSampler": "samplers",
    "MetaPEFTPruner": "pruners",
}

__all__ = sorted([*_EXPORTS, "BLAS", "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metapeft_optuna' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
