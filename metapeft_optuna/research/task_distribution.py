"""``TaskConfig`` and ``TaskDistribution``: synthetic few-shot task families (seed API).

Each family draws related tasks from shared family parameters plus per-task variation,
so an initialisation meta-learned on some tasks transfers to others:

- ``linear_classification``: labels are ``argmax(W x + b)``; every task's ``W`` is the
  family's ``W0`` rotated by a random angle (up to ``spread`` radians) plus noise.
- ``gaussian_mixture``: class means are the family's means plus noise; inputs are
  Gaussian around them.
- ``radial_classification``: labels are bands of ``||x - c||`` around a task centre ``c``
  (not linearly separable).

Inputs are standard normal (or drawn around class means); support sets are
label-balanced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import numpy as np

from ..errors import TaskSamplingError
from ..validation import check_int

FAMILIES = ("linear_classification", "gaussian_mixture", "radial_classification")


@dataclass
class TaskConfig:
    """Configuration for a meta-learning task.

    Attributes:
        task_id: Unique task identifier.
        task_family: Task category (one of :data:`FAMILIES`).
        num_classes: Number of classes in the classification task.
        input_dim: Input feature dimension.
        support_size: Number of support examples (the K-shot training set).
        query_size: Number of query examples for evaluation.
        task_params: Optional family parameters (``spread``, ``noise``, ``scale``).

    Example:
        >>> TaskConfig("t0", "linear_classification", 2, 2, 5, 20).support_size
        5
    """

    task_id: str
    task_family: str
    num_classes: int
    input_dim: int
    support_size: int
    query_size: int
    task_params: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task_family not in FAMILIES:
            raise TaskSamplingError(
                f"task {self.task_id!r}: unknown task_family "
                f"{self.task_family!r}; use one of {FAMILIES}."
            )
        for name, low in (
            ("num_classes", 2),
            ("input_dim", 1),
            ("support_size", 1),
            ("query_size", 1),
        ):
            check_int(
                f"task {self.task_id!r}", name, getattr(self, name), low, error=TaskSamplingError
            )


@dataclass
class _TaskModel:
    """The hidden rule of one task."""

    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    means: np.ndarray | None = None
    center: np.ndarray | None = None
    radii: np.ndarray | None = None
    scale: float = 1.0
    complexity: float = field(default=0.0)


class TaskDistribution:
    """Manages a distribution of meta-learning tasks: sampling, episodes, task features.

    Args:
        task_configs: List of task configurations (ids must be unique).
        seed: Random seed; the same seed gives the same tasks and episodes.

    Example:
        >>> configs = [TaskConfig(f"task_{i}", "linear_classification", 2, 2, 5, 20)
        ...            for i in range(20)]
        >>> dist = TaskDistribution(configs, seed=42)
        >>> config, sx, sy, qx, qy = dist.sample_episode("task_0")
        >>> sx.shape, qx.shape
        ((5, 2), (20, 2))
    """

    def __init__(self, task_configs: list[TaskConfig], seed: int | None = None):
        if not task_configs:
            raise TaskSamplingError("TaskDistribution needs at least one TaskConfig.")
        ids = [c.task_id for c in task_configs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise TaskSamplingError(f"duplicate task ids {duplicates}.")
        self.task_configs = list(task_configs)
        self.seed = seed
        self._by_id = {c.task_id: c for c in task_configs}
        self._rng = np.random.default_rng(seed)
        # The hidden task rules depend on this "world" seed, which splits keep, so a task
        # is the same task in every distribution derived from this one.
        self._world = seed
        self._models: dict[str, _TaskModel] = {}

    # --- the hidden task rules ---------------------------------------------------------
    def _family_rng(self, config: TaskConfig) -> np.random.Generator:
        # Family parameters depend only on the family's shape, so related tasks share them.
        key = f"{config.task_family}:{config.num_classes}:{config.input_dim}:{self._world}"
        return np.random.default_rng([ord(ch) for ch in key])

    def _task_model(self, config: TaskConfig) -> _TaskModel:
        if config.task_id in self._models:
            return self._models[config.task_id]
        params = config.task_params or {}
        family = self._family_rng(config)
        task = np.random.default_rng([ord(ch) for ch in f"{config.task_id}:{self._world}"])
        k, d = config.num_classes, config.input_dim
        model = _TaskModel(scale=float(params.get("scale", 1.0)))
        if config.task_family == "linear_classification":
            base = family.normal(size=(k, d))
            spread = float(params.get("spread", math.pi / 3))
            model.weights = _rotate(base, task.uniform(-spread, spread), task) + float(
                params.get("noise", 0.1)
            ) * task.normal(size=(k, d))
            model.bias = 0.1 * task.normal(size=k)
        elif config.task_family == "gaussian_mixture":
            model.means = 2.0 * family.normal(size=(k, d)) + float(
                params.get("noise", 0.5)
            ) * task.normal(size=(k, d))
        else:
            model.center = float(params.get("noise", 0.3)) * task.normal(size=d)
            radius = np.linalg.norm(task.normal(size=(4096, d)) - model.center, axis=1)
            model.radii = np.quantile(radius, np.arange(1, k) / k)
        model.complexity = self._estimate_complexity(config, model, task)
        self._models[config.task_id] = model
        return model

    def _label(self, config: TaskConfig, model: _TaskModel, x: np.ndarray) -> np.ndarray:
        if config.task_family == "linear_classification":
            return np.argmax(x @ model.weights.T + model.bias, axis=1)
        if config.task_family == "gaussian_mixture":
            distances = ((x[:, None, :] - model.means[None]) ** 2).sum(-1)
            return np.argmin(distances, axis=1)
        return np.digitize(np.linalg.norm(x - model.center, axis=1), model.radii)

    def _draw(
        self, config: TaskConfig, model: _TaskModel, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        if config.task_family == "gaussian_mixture":
            labels = np.arange(n) % config.num_classes
            x = model.means[labels] + model.scale * rng.normal(size=(n, config.input_dim))
            return x, self._label(config, model, x)
        x = model.scale * rng.normal(size=(n, config.input_dim))
        return x, self._label(config, model, x)

    def _balanced(
        self, config: TaskConfig, model: _TaskModel, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` examples with labels as even as the task allows."""
        pool_x, pool_y = self._draw(config, model, max(64, 16 * n), rng)
        wanted = np.arange(n) % config.num_classes
        chosen = []
        used = np.zeros(len(pool_y), dtype=bool)
        for label in wanted:
            candidates = np.flatnonzero((pool_y == label) & ~used)
            if len(candidates) == 0:
                candidates = np.flatnonzero(~used)
            pick = candidates[0]
            used[pick] = True
            chosen.append(pick)
        order = rng.permutation(chosen)
        return pool_x[order], pool_y[order]

    def _estimate_complexity(
        self, config: TaskConfig, model: _TaskModel, rng: np.random.Generator
    ) -> float:
        """Error of a nearest-class-mean classifier trained on a large sample, in [0, 1]."""
        x, y = self._draw(config, model, 2000, rng)
        present = np.unique(y)
        means = np.stack([x[y == c].mean(0) for c in present])
        predicted = present[np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)]
        return float((predicted != y).mean())

    # --- the seed API --------------------------------------------------------------------
    def _config(self, task_id: str) -> TaskConfig:
        if task_id not in self._by_id:
            raise TaskSamplingError(
                f"unknown task_id {task_id!r}; this distribution has "
                f"{len(self._by_id)} tasks such as {list(self._by_id)[:3]}."
            )
        return self._by_id[task_id]

    def sample_episode(
        self, task_id: str | None = None
    ) -> tuple[TaskConfig, mx.array, mx.array, mx.array, mx.array]:
        """Sample an episode (support + query sets) from a task.

        Args:
            task_id: Specific task to sample (default: a random one).

        Returns:
            ``(task_config, support_x, support_y, query_x, query_y)``; x float32, y int32.

        Raises:
            TaskSamplingError: ``task_id`` is not in this distribution.
        """
        if task_id is None:
            config = self.task_configs[int(self._rng.integers(len(self.task_configs)))]
        else:
            config = self._config(task_id)
        model = self._task_model(config)
        sx, sy = self._balanced(config, model, config.support_size, self._rng)
        qx, qy = self._balanced(config, model, config.query_size, self._rng)
        return (
            config,
            mx.array(sx, dtype=mx.float32),
            mx.array(sy, dtype=mx.int32),
            mx.array(qx, dtype=mx.float32),
            mx.array(qy, dtype=mx.int32),
        )

    def get_task_embedding(self, task_id: str) -> mx.array:
        """Handcrafted task features: ``[log(support + query), support_size, num_classes,
        input_dim, complexity_score]`` (shape ``(5,)``).

        Raises:
            TaskSamplingError: ``task_id`` is not in this distribution.
        """
        config = self._config(task_id)
        complexity = self._task_model(config).complexity
        return mx.array(
            [
                math.log(config.support_size + config.query_size),
                config.support_size,
                config.num_classes,
                config.input_dim,
                complexity,
            ],
            dtype=mx.float32,
        )

    def split_tasks(self, train_ratio: float = 0.8) -> tuple[TaskDistribution, TaskDistribution]:
        """Split tasks into train and validation distributions (deterministic by seed).

        Raises:
            TaskSamplingError: ``train_ratio`` leaves one side empty.
        """
        n = len(self.task_configs)
        n_train = int(round(n * train_ratio))
        if not 0 < n_train < n:
            raise TaskSamplingError(
                f"train_ratio={train_ratio} splits {n} tasks into "
                f"{n_train} and {n - n_train}; both sides need tasks."
            )
        order = np.random.default_rng(self.seed).permutation(n)
        train = [self.task_configs[i] for i in sorted(order[:n_train])]
        val = [self.task_configs[i] for i in sorted(order[n_train:])]
        seed = None if self.seed is None else self.seed + 1
        parts = TaskDistribution(train, seed=self.seed), TaskDistribution(val, seed=seed)
        for part in parts:
            part._world = self._world
        return parts


def _rotate(matrix: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate the rows of ``matrix`` by ``angle`` in a random plane of the input space."""
    d = matrix.shape[1]
    if d == 1:
        return matrix * (1 if abs(angle) < math.pi / 2 else -1)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    u, v = basis[:, 0], basis[:, 1]
    rotation = (
        np.eye(d)
        + math.sin(angle) * (np.outer(v, u) - np.outer(u, v))
        + (math.cos(angle) - 1) * (np.outer(u, u) + np.outer(v, v))
    )
    return matrix @ rotation.T
