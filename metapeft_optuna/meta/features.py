"""Numeric inputs and targets of the meta-model, and their standardisation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import schema
from ..errors import NotFittedError
from ..tasks import TaskCharacteristics
from .experience import PEFTExperience

MODEL_FEATURES = ("log_parameters", "log_layers", "log_hidden", "log_vocab", "bits_fraction")


def model_vector(info: dict[str, Any] | None) -> np.ndarray:
    """The model's meta-features (zeros when unknown)."""
    if not info:
        return np.zeros(len(MODEL_FEATURES), dtype=np.float32)
    bits = info.get("quantization_bits") or 32
    return np.array(
        [
            math.log(max(info.get("num_parameters", 1), 1)),
            math.log(max(info.get("num_layers", 1), 1)),
            math.log(max(info.get("hidden_size", 1), 1)),
            math.log(max(info.get("vocab_size", 1), 1)),
            bits / 32,
        ],
        dtype=np.float32,
    )


def context_vector(characteristics: TaskCharacteristics, model_info: dict | None) -> np.ndarray:
    """Task and model meta-features, the "task" input of every network."""
    return np.concatenate([characteristics.to_vector(), model_vector(model_info)])


def context_feature_names() -> list[str]:
    return TaskCharacteristics.feature_names() + list(MODEL_FEATURES)


def target_vector(metrics: dict[str, float | None]) -> np.ndarray:
    """``[accuracy, log peak MB, log train seconds]``; NaN where unknown."""

    def log(value: float | None) -> float:
        return math.log(max(value, 1e-6)) if value is not None else float("nan")

    accuracy = metrics.get("accuracy")
    return np.array(
        [
            accuracy if accuracy is not None else float("nan"),
            log(metrics.get("peak_memory_mb")),
            log(metrics.get("train_seconds")),
        ],
        dtype=np.float32,
    )


def from_target_vector(vector: np.ndarray) -> dict[str, float]:
    """Inverse of :func:`target_vector` (objectives in their own units)."""
    return {
        schema.OBJECTIVES[0]: float(vector[0]),
        schema.OBJECTIVES[1]: float(np.exp(vector[1])),
        schema.OBJECTIVES[2]: float(np.exp(vector[2])),
    }


@dataclass
class Standardizer:
    """Per-column mean/std scaling (scikit-learn style: ``fit`` returns self).

    Example:
        >>> s = Standardizer().fit(np.array([[0.0, 10.0], [2.0, 10.0]]))
        >>> s.transform(np.array([[1.0, 10.0]])).tolist()
        [[0.0, 0.0]]
    """

    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        self.mean_ = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        self.scale_ = np.where(std > 1e-8, std, 1.0)
        return self

    def _check(self) -> None:
        if self.mean_ is None:
            raise NotFittedError("Standardizer is not fitted yet; call fit() first.")

    def transform(self, x: np.ndarray) -> np.ndarray:
        self._check()
        return ((np.asarray(x) - self.mean_) / self.scale_).astype(np.float32)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        self._check()
        return (np.asarray(x) * self.scale_ + self.mean_).astype(np.float32)

    def inverse_scale(self, std: np.ndarray) -> np.ndarray:
        self._check()
        return (np.asarray(std) * self.scale_).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        self._check()
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Standardizer:
        return cls(np.array(data["mean"]), np.array(data["scale"]))


def experience_arrays(
    experiences: Sequence[PEFTExperience], space
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(contexts, configs, targets)`` of experiences, for a :class:`PEFTSearchSpace`."""
    contexts = np.stack([context_vector(e.task_characteristics, e.model_info) for e in experiences])
    configs = np.stack([space.encode(e.hyperparameters) for e in experiences])
    targets = np.stack([target_vector(e.performance_metrics) for e in experiences])
    return contexts.astype(np.float32), configs.astype(np.float32), targets
