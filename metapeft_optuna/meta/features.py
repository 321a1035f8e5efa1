"""Numeric inputs and targets of the meta-model, and their standardisation."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution

from .. import schema
from ..errors import NotFittedError
from ..tasks import TaskCharacteristics
from ..training.search_space import in_distribution
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
    """Names of :func:`context_vector`'s entries, in order (task features, then model)."""
    return TaskCharacteristics.feature_names() + list(MODEL_FEATURES)


def target_vector(
    metrics: dict[str, float | None], objectives: Sequence[str] | None = None
) -> np.ndarray:
    """The meta-model's targets: one column per objective of ``schema.METRICS``
    (``[accuracy, log val_loss, log peak MB, log train seconds]``, the log where
    ``ObjectiveSpec.log_scale``), or of ``objectives`` in their order; NaN where unknown.

    Example:
        >>> target_vector({"accuracy": 0.5, "peak_memory_mb": 1.0}).tolist()[:3]
        [0.5, nan, 0.0]
    """
    out = np.full(len(schema.METRICS), np.nan, dtype=np.float32)
    for i, name in enumerate(schema.METRICS):
        value = metrics.get(name)
        if value is None or not math.isfinite(value):
            continue
        out[i] = math.log(max(value, 1e-6)) if schema.OBJECTIVE_SPECS[name].log_scale else value
    return out if objectives is None else out[[schema.METRICS.index(o) for o in objectives]]


def target_columns(objectives: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """Where ``objectives`` sit in a target vector, and the signs that make each one
    minimised (``-1`` for maximised objectives): ``targets[:, columns] * signs``.

    Example:
        >>> target_columns(["train_seconds", "accuracy"])
        ([3, 0], array([ 1., -1.]))
    """
    columns = [schema.METRICS.index(name) for name in objectives]
    return columns, np.array([schema.OBJECTIVE_SPECS[name].sign for name in objectives])


def prediction_dict(mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """A predicted target vector in the objectives' own units: ``{name: value,
    name_std or name_log_std: spread}`` for every known column.

    Example:
        >>> prediction_dict(np.array([0.8, np.nan, np.log(600), np.log(20)]),
        ...                 np.array([0.05, np.nan, 0.1, 0.1]))["peak_memory_mb"]
        600.0
    """
    out: dict[str, float] = {}
    for name, m, s in zip(schema.METRICS, mean, std):
        if not math.isfinite(m):
            continue
        if schema.OBJECTIVE_SPECS[name].log_scale:
            out[name], out[f"{name}_log_std"] = round(math.exp(min(m, 700.0)), 6), float(s)
        else:
            out[name], out[f"{name}_std"] = float(m), float(s)
    return out


def describe_prediction(prediction: dict[str, float]) -> str:
    """``"accuracy 0.812±0.050, 600 MB, 20.0 s"`` from :func:`prediction_dict`'s output."""
    parts = []
    for name in schema.METRICS:
        if name not in prediction:
            continue
        value = prediction[name]
        if name == "accuracy":
            parts.append(f"accuracy {value:.3f}±{prediction['accuracy_std']:.3f}")
        elif name == "val_loss":
            parts.append(f"val_loss {value:.3f} (log sd {prediction['val_loss_log_std']:.2f})")
        elif name == "peak_memory_mb":
            parts.append(f"{value:.0f} MB")
        else:
            parts.append(f"{value:.1f} s")
    return ", ".join(parts)


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
        # A column with no known value (a metric no experience measured) stays unscaled.
        known = np.isfinite(x).any(axis=0)
        filled = np.where(known, x, 0.0)
        self.mean_ = np.where(known, np.nanmean(filled, axis=0), 0.0)
        std = np.where(known, np.nanstd(filled, axis=0), 1.0)
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


def warn_outside_ranges(experiences: Iterable[PEFTExperience], space) -> None:
    """Warn when ``experiences`` hold parameter values outside ``space``'s ranges: their
    features leave ``[0, 1]`` and the surrogate extrapolates (the v2 meta-dataset's 200
    steps read as 9.5 in a space of 10-30 steps). The fix is a space that covers them."""
    distributions = space.distributions()
    outside: dict[str, set] = {}
    for e in experiences:
        for name, value in e.hyperparameters.items():
            known = name != "method" and name in distributions
            if known and not _in_range(distributions[name], value):
                outside.setdefault(name, set()).add(value)
    if outside:
        found = "; ".join(
            f"{name} {_span(values)} outside {distributions[name]}"
            for name, values in sorted(outside.items())
        )
        warnings.warn(
            f"experience outside the meta-model's search space ({found}): its features are "
            "extrapolated; fit the meta-model in a space whose ranges cover the experience",
            stacklevel=3,
        )


def _span(values: set) -> str:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return f"{min(values)}..{max(values)}" if len(values) > 1 else f"{min(values)}"
    return str(sorted(values, key=str))


def _in_range(distribution, value) -> bool:
    """Whether ``value`` encodes inside ``[0, 1]``: a choice of a categorical, else between
    the bounds (off the step grid is fine: the encoding is continuous)."""
    if isinstance(distribution, CategoricalDistribution):
        return in_distribution(distribution, value)
    return distribution.low <= value <= distribution.high


def experience_arrays(
    experiences: Sequence[PEFTExperience], space
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays the surrogate learns from.

    Args:
        experiences: ``n`` experiences.
        space: The :class:`~metapeft_optuna.training.PEFTSearchSpace` that encodes them.

    Returns:
        ``contexts`` ``(n, d_context)`` float32 (:func:`context_vector`), ``configs``
        ``(n, space.dimension)`` float32 in ``[0, 1]`` for experience inside the space's
        ranges (``space.encode``; see :func:`warn_outside_ranges`) and
        ``targets`` ``(n, len(schema.METRICS))`` (:func:`target_vector`: NaN where a
        metric was not measured).
    """
    contexts = np.stack([context_vector(e.task_characteristics, e.model_info) for e in experiences])
    configs = np.stack([space.encode(e.hyperparameters) for e in experiences])
    targets = np.stack([target_vector(e.performance_metrics) for e in experiences])
    return contexts.astype(np.float32), configs.astype(np.float32), targets
