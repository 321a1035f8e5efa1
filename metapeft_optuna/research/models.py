"""``SimpleClassifier`` and its loss and metric (the seed's ``meta_learning.models``)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ..meta._learner import accuracy, cross_entropy_loss
from ..validation import check_int

__all__ = ["SimpleClassifier", "accuracy", "cross_entropy_loss"]


class SimpleClassifier(nn.Module):
    """Feed-forward classifier: input -> linear -> relu -> linear -> relu -> output.

    Args:
        input_dim: Dimension of input features.
        hidden_dim: Hidden layer size (default: 64).
        num_classes: Number of classes (default: 2).

    Example:
        >>> model = SimpleClassifier(input_dim=10, hidden_dim=128, num_classes=3)
        >>> model(mx.random.normal((32, 10))).shape
        (32, 3)
    """

    def __init__(self, input_dim: int, hidden_dim: int = 64, num_classes: int = 2):
        super().__init__()
        for name, value in (
            ("input_dim", input_dim),
            ("hidden_dim", hidden_dim),
            ("num_classes", num_classes),
        ):
            check_int("SimpleClassifier", name, value)
        self.input_dim, self.hidden_dim, self.num_classes = input_dim, hidden_dim, num_classes
        self.layers = [
            nn.Linear(input_dim, hidden_dim),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Linear(hidden_dim, num_classes),
        ]

    def __call__(self, x: mx.array) -> mx.array:
        """Map ``(batch, input_dim)`` features to ``(batch, num_classes)`` logits."""
        for layer in self.layers[:-1]:
            x = nn.relu(layer(x))
        return self.layers[-1](x)
