"""Method selection: what each source task showed, its soft label, and training the
task embedder + method selector on those labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from .acquisition import pareto_mask
from .experience import PEFTExperience
from .features import context_vector, target_vector
from .networks import MethodSelectionNetwork, TaskEmbeddingNetwork


def task_summary(key: str, experiences: Sequence[PEFTExperience]) -> dict[str, Any]:
    """What a source task showed: its best accuracy per method."""
    first = experiences[0]
    best: dict[str, float] = {}
    for e in experiences:
        best[e.method_used.value] = max(best.get(e.method_used.value, -1.0), e.accuracy)
    return {
        "name": first.task_name,
        "key": key,
        "model": first.model_info.get("name", ""),
        "trials": len(experiences),
        "best_accuracy": best,
        "best_method": max(best, key=best.get),
        "context": context_vector(first.task_characteristics, first.model_info).tolist(),
    }


def selection_target(experiences: Sequence[PEFTExperience], methods: Sequence[str]) -> np.ndarray:
    """Soft label of a source task: half on its best-accuracy method, half shared by the
    methods on its useful Pareto front (trials within 90% of the best accuracy)."""

    def one_hot(method: str) -> np.ndarray:
        return (np.array(methods) == method).astype(np.float32)

    best = max(experiences, key=lambda e: e.accuracy)
    useful = [e for e in experiences if e.accuracy >= 0.9 * best.accuracy]
    points = np.array([[-e.accuracy, *target_vector(e.performance_metrics)[1:]] for e in useful])
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
    x, y = mx.array(contexts), mx.array(targets)
    model = nn.Sequential(embedder, selector)
    optimizer = optim.AdamW(learning_rate=1e-2, weight_decay=1e-2)

    def loss_fn(m: nn.Module) -> mx.array:
        return -(y * nn.log_softmax(m(x), axis=-1)).sum(axis=-1).mean()

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    for _ in range(steps):
        _, grads = loss_and_grad(model)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
