"""The meta-model's MLX networks: task embedding, method selection, surrogate member."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ..tasks import TaskCharacteristics
from .features import context_feature_names, context_vector


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TaskEmbeddingNetwork(nn.Module):
    """Neural network for task embedding: normalised task (and model) features ->
    an embedding vector.

    Args:
        embedding_dim: Size of the embedding (default: 128, as in the design seed).
        input_dim: Number of input features (default: the task + model meta-features
            of :func:`~metapeft_optuna.meta.features.context_vector`).
        hidden_dims: Hidden layer sizes (default: 64, 128 as in the design seed).

    Example:
        >>> net = TaskEmbeddingNetwork(embedding_dim=16)
        >>> net(mx.zeros((3, net.input_dim))).shape
        (3, 16)
    """

    def __init__(
        self,
        embedding_dim: int = 128,
        input_dim: int | None = None,
        hidden_dims: Sequence[int] = (64, 128),
    ):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.input_dim = input_dim or len(context_feature_names())
        self.hidden_dims = tuple(hidden_dims)
        self.feature_encoder = self._build_encoder()

    def _build_encoder(self) -> nn.Module:
        """Build the task feature encoder."""
        return _mlp([self.input_dim, *self.hidden_dims, self.embedding_dim])

    def __call__(self, task_features: mx.array) -> mx.array:
        """Encode tasks ``(batch, input_dim)`` into embeddings ``(batch, embedding_dim)``."""
        return self.feature_encoder(task_features)

    forward = __call__

    def extract_task_features(
        self, task_characteristics: TaskCharacteristics, model_info: dict[str, Any] | None = None
    ) -> mx.array:
        """Raw (unnormalised) numeric features of a task, shape ``(input_dim,)``."""
        return mx.array(context_vector(task_characteristics, model_info))


class MethodSelectionNetwork(nn.Module):
    """Task embedding -> probability of each PEFT method being the task's best choice.

    Args:
        embedding_dim: Size of the task embedding it reads.
        num_methods: Number of PEFT methods (outputs).
        hidden_dim: Hidden layer size.

    Example:
        >>> net = MethodSelectionNetwork(embedding_dim=16, num_methods=6)
        >>> probs = net.probabilities(mx.zeros((2, 16)))
        >>> probs.shape, round(float(probs[0].sum()), 4)
        ((2, 6), 1.0)
    """

    def __init__(self, embedding_dim: int, num_methods: int, hidden_dim: int = 32):
        super().__init__()
        self.net = _mlp([embedding_dim, hidden_dim, num_methods])

    def __call__(self, embedding: mx.array) -> mx.array:
        """Logits over methods."""
        return self.net(embedding)

    def probabilities(self, embedding: mx.array) -> mx.array:
        return mx.softmax(self(embedding), axis=-1)


class SurrogateNet(nn.Module):
    """One ensemble member: ``[context, config] -> [accuracy, log MB, log s]`` (scaled).

    The input is one array (context features then configuration vector), so the
    member works with :class:`~metapeft_optuna.meta.reptile.ReptileLearner` as is.

    Example:
        >>> net = SurrogateNet(context_dim=4, config_dim=3, embedding_dim=2)
        >>> net(mx.zeros((5, 7))).shape
        (5, 3)
    """

    def __init__(
        self,
        context_dim: int,
        config_dim: int,
        embedding_dim: int = 16,
        hidden_dim: int = 64,
        outputs: int = 3,
    ):
        super().__init__()
        self.context_dim = context_dim
        self.embedder = TaskEmbeddingNetwork(embedding_dim, context_dim, (32,))
        self.head = _mlp([embedding_dim + config_dim, hidden_dim, hidden_dim, outputs])

    def __call__(self, inputs: mx.array) -> mx.array:
        context, config = inputs[:, : self.context_dim], inputs[:, self.context_dim :]
        return self.head(mx.concatenate([self.embedder(context), config], axis=1))


def masked_mse(prediction: mx.array, target: mx.array) -> mx.array:
    """Mean squared error over the known (non-NaN) targets (the surrogate's loss: an
    experience may lack some objectives)."""
    known = ~mx.isnan(target)
    diff = mx.where(known, prediction - mx.where(known, target, 0.0), 0.0)
    return (diff * diff).sum() / mx.maximum(known.sum(), 1)
