"""P-tuning's prompt encoders (MLX versions of HF peft's ``PromptEncoder``)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


class BidirectionalLSTM(nn.Module):
    """Stacked bidirectional LSTM over a ``(batch, length, features)`` sequence.

    Example:
        >>> BidirectionalLSTM(8, 4, num_layers=2, dropout=0.0)(mx.zeros((1, 3, 8))).shape
        (1, 3, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = [nn.LSTM(size, hidden_size) for size in sizes]
        self.backward_layers = [nn.LSTM(size, hidden_size) for size in sizes]
        self.dropout = nn.Dropout(dropout)

    def __call__(self, x: mx.array) -> mx.array:
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            forward, _ = fwd(x)
            backward, _ = bwd(x[:, ::-1])
            x = mx.concatenate([forward, backward[:, ::-1]], axis=-1)
        return x


class PromptEncoder(nn.Module):
    """Maps trained input embeddings to the virtual tokens.

    Args:
        num_virtual_tokens: Number of virtual tokens.
        token_dim: The language model's hidden size.
        encoder_type: ``"mlp"`` or ``"lstm"``.
        hidden_size: Hidden width.
        num_layers: LSTM layers.
        dropout: Dropout inside the encoder.
        init_embeddings: Initial ``(num_virtual_tokens, token_dim)`` input embeddings.

    Example:
        >>> encoder = PromptEncoder(4, 16, "mlp", 8, 2, 0.0, mx.zeros((4, 16)))
        >>> encoder().shape
        (4, 16)
    """

    def __init__(
        self,
        num_virtual_tokens: int,
        token_dim: int,
        encoder_type: str,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        init_embeddings: mx.array,
    ):
        super().__init__()
        self.embedding = init_embeddings
        self.encoder_type = encoder_type
        if encoder_type == "lstm":
            self.lstm = BidirectionalLSTM(token_dim, hidden_size, num_layers, dropout)
            self.head = [
                nn.Linear(2 * hidden_size, 2 * hidden_size),
                nn.Linear(2 * hidden_size, token_dim),
            ]
        else:
            self.head = [
                nn.Linear(token_dim, hidden_size),
                nn.Linear(hidden_size, hidden_size),
                nn.Linear(hidden_size, token_dim),
            ]
        self.dropout = nn.Dropout(dropout)

    def __call__(self) -> mx.array:
        x = self.embedding[None]
        if self.encoder_type == "lstm":
            x = self.lstm(x)
        for layer in self.head[:-1]:
            x = self.dropout(nn.relu(layer(x)))
        return self.head[-1](x)[0]
