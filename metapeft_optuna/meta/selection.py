"""Method selection: what each source task showed, its soft label, and training the
task embedder + method selector on those labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from .. import schema
from .acquisition import pareto_mask
from .experience import PEFTExperience
from .features import context_vector, target_columns, target_vector
from .networks import MethodSelectionNetwork, TaskEmbeddingNetwork


def task_summary(key: str, experiences: Sequence[PEFTExperience]) -> dict[str, Any]:
    """What a source task showed: its best quality per method (accuracy, or minus val_loss
    where that is the task's quality objective; :attr:`PEFTExperience.quality`), and the
    metric it reads (``"quality_metric"``)."""
    first = experiences[0]
    best: dict[str, float] = {}
    for e in experiences:
        best[e.method_used.value] = max(best.get(e.method_used.value, -np.inf), e.quality)
    return {
        "name": first.task_name,
        "key": key,
        "model": first.model_info.get("name", ""),
        "trials": len(experiences),
        "best_quality": best,
        "quality_metric": first.quality_metric,
        "best_method": max(best, key=best.get),
        "context": context_vector(first.task_characteristics, first.model_info).tolist(),
    }


def selection_target(experiences: Sequence[PEFTExperience], methods: Sequence[str]) -> np.ndarray:
    """Soft label of a source task: half on its best-quality method, half shared by the
    methods on its useful Pareto front (trials within 10% of the best quality)."""

    def one_hot(method: str) -> np.ndarray:
        return (np.array(methods) == method).astype(np.float32)

    best = max(experiences, key=lambda e: e.quality)
    useful = [e for e in experiences if e.quality >= best.quality - 0.1 * abs(best.quality)]
    costs, _ = target_columns(schema.COST_OBJECTIVES)
    points = np.array([[-e.quality, *target_vector(e.performance_metrics)[costs]] for e in useful])
    front = sum(
        (one_hot(e.method_used.value) for e, keep in zip(useful, pareto_mask(points)) if keep),
        np.zeros(len(methods), dtype=np.float32),
    )
    best_label = one_hot(best.method_used.value)
    front = front / front.sum() if front.sum() > 0 else best_label
    return 0.5 * best_label + 0.5 * front


def fit_method_selector(
    embedder: TaskEmbeddingNetwork,
    selector: MethodSelectionNetwork,
    contexts: np.ndarray,
    targets: np.ndarray,
    steps: int = 300,
) -> None:
    """Train ``selector(embedder(contexts))`` towards the soft ``targets`` (cross-entropy)."""
    x, y = mx.array(contexts), mx.array(np.asarray(targets, dtype=np.float32))
    model = nn.Sequential(embedder, selector)
    optimizer = optim.AdamW(learning_rate=1e-2, weight_decay=1e-2)
    optimizer.init(model.trainable_parameters())

    def loss_fn(m: nn.Module) -> mx.array:
        return -(y * nn.log_softmax(m(x), axis=-1)).sum(axis=-1).mean()

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state]

    # Compiled: 300 full-batch steps of the same shapes (calibration runs this once per
    # fold), about 2.5x faster than the eager loop with identical results.
    @partial(mx.compile, inputs=state, outputs=state)
    def step() -> None:
        _, grads = loss_and_grad(model)
        optimizer.update(model, grads)

    for _ in range(steps):
        step()
        mx.eval(state)


def _cross_entropy(targets: np.ndarray, probabilities: np.ndarray) -> float:
    return float(-(targets * np.log(np.clip(probabilities, 1e-9, 1.0))).sum(axis=1).mean())


def base_rate(targets: np.ndarray) -> np.ndarray:
    """How often each method wins across source tasks, Laplace-smoothed towards uniform."""
    targets = np.atleast_2d(targets)
    return (targets.sum(axis=0) + 1.0) / (len(targets) + targets.shape[1])


@dataclass
class SelectorCalibration:
    """How far to trust the method selector on a task it has not seen.

    ``p = (1 - prior_weight) * softmax(logits / temperature) + prior_weight * base_rate``.
    With a dozen source tasks the selector memorises them and says p = 1.00 for one
    method; :meth:`fit` chooses the temperature and the weight of the base rate that
    minimise the cross-entropy of its *held-out* predictions (temperature scaling, as in
    Guo et al. 2017, with leave-one-task-out as the validation set).

    Example:
        >>> calibration = SelectorCalibration(2.0, 0.5, [0.5, 0.5])
        >>> calibration.apply(np.array([[4.0, 0.0]])).round(3).tolist()
        [[0.69, 0.31]]
    """

    temperature: float = 1.0
    prior_weight: float = 0.0
    base_rate: list[float] = field(default_factory=list)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``logits`` ``(n, methods)``."""
        scaled = np.asarray(logits, dtype=np.float64) / self.temperature
        softmax = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        softmax /= softmax.sum(axis=-1, keepdims=True)
        prior = np.asarray(self.base_rate) if self.base_rate else 1.0 / softmax.shape[-1]
        return (1.0 - self.prior_weight) * softmax + self.prior_weight * prior

    @classmethod
    def fit(
        cls, logits: np.ndarray, targets: np.ndarray, prior: np.ndarray, rates: np.ndarray
    ) -> SelectorCalibration:
        """Grid-search temperature and prior weight on held-out ``logits``.

        Args:
            logits: Held-out selector logits, one row per source task.
            targets: The tasks' soft labels.
            prior: The base rate to store (over all tasks).
            rates: Per row, the base rate without that row's task (what it could know).
        """
        best = (np.inf, 1.0, 1.0)
        for temperature in np.geomspace(0.25, 64.0, 25):
            softmax = cls(float(temperature)).apply(logits)
            for weight in np.linspace(0.0, 1.0, 21):
                loss = _cross_entropy(targets, (1 - weight) * softmax + weight * rates)
                if loss < best[0] - 1e-9:  # ties keep the sharper, less shrunk setting
                    best = (loss, float(temperature), float(weight))
        _, temperature, weight = best
        temperature = 1.0 if weight == 1.0 else temperature  # unused once fully shrunk
        return cls(temperature, weight, np.asarray(prior).round(6).tolist())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_method_selector(
    contexts: np.ndarray,
    targets: np.ndarray,
    embedding_dim: int,
    seed: int = 0,
    folds: int = 10,
) -> SelectorCalibration:
    """Fit a :class:`SelectorCalibration` by cross-validation over source tasks.

    Each fold trains a fresh embedder + selector without its tasks and predicts them.
    With fewer than three source tasks nothing can be validated, and the calibration
    falls back on the smoothed base rate alone.

    Example:
        >>> targets = np.eye(3)[[0, 0, 1, 0]].astype(np.float32)
        >>> c = calibrate_method_selector(np.random.rand(4, 5).astype(np.float32), targets, 4)
        >>> 0.0 <= c.prior_weight <= 1.0, len(c.base_rate)
        (True, 3)
    """
    targets = np.asarray(targets, dtype=np.float64)
    n, methods = targets.shape
    prior = base_rate(targets)
    if n < 3:
        return SelectorCalibration(1.0, 1.0, prior.round(6).tolist())
    fold_of = np.arange(n) % min(folds, n)
    logits = np.zeros_like(targets)
    rates = np.zeros_like(targets)
    for fold in range(fold_of.max() + 1):
        train, held = fold_of != fold, fold_of == fold
        mx.random.seed(seed + fold + 1)
        embedder = TaskEmbeddingNetwork(embedding_dim, contexts.shape[1])
        selector = MethodSelectionNetwork(embedding_dim, methods)
        fit_method_selector(embedder, selector, contexts[train], targets[train])
        logits[held] = np.array(selector(embedder(mx.array(contexts[held]))))
        rates[held] = base_rate(targets[train])
    return SelectorCalibration.fit(logits, targets, prior, rates)
