"""``LoRAAdapter``: the seed's standalone LoRA layer, built on mlx-lm's ``LoRALinear``.

Reusing mlx-lm's layer keeps the parameter names (``lora_a``, ``lora_b``) and the
forward ``linear(x) + scale * (dropout(x) @ lora_a) @ lora_b`` identical to mlx-lm's, so
adapters move freely between the two.
"""

from __future__ import annotations

import mlx.nn as nn
from mlx_lm.tuner.lora import LoRALinear


class LoRAAdapter(LoRALinear):
    """Low-Rank Adaptation (LoRA) of a linear layer: ``W + (alpha / rank) * B A``.

    ``lora_a`` is stored as ``(in_features, rank)`` and ``lora_b`` as
    ``(rank, out_features)`` (mlx-lm's layout, the transposes of the paper's A and B);
    ``lora_b`` starts at zero so a new adapter leaves the layer unchanged.

    Args:
        in_features: Input dimension.
        out_features: Output dimension.
        rank: Rank of low-rank matrices (default: 8).
        alpha: Scaling parameter (default: 16.0); the update is scaled by alpha / rank.
        dropout: Dropout rate on the adapter's input (default: 0.0).
        bias: Whether the frozen base layer has a bias.

    Example:
        >>> import mlx.core as mx
        >>> adapter = LoRAAdapter(in_features=768, out_features=768, rank=8, alpha=16)
        >>> adapter(mx.ones((2, 768))).shape
        (2, 768)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        bias: bool = False,
    ):
        super().__init__(
            input_dims=in_features,
            output_dims=out_features,
            r=rank,
            dropout=dropout,
            scale=alpha / rank,
            bias=bias,
        )
        self.linear.freeze()
        self.rank, self.alpha = rank, alpha

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear | nn.QuantizedLinear,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
    ) -> LoRAAdapter:
        """Wrap an existing (frozen) linear or quantized linear layer."""
        out_features, in_features = linear.weight.shape
        if isinstance(linear, nn.QuantizedLinear):
            in_features = in_features * 32 // linear.bits
        adapter = cls(in_features, out_features, rank, alpha, dropout)
        linear.freeze()
        adapter.linear = linear
        return adapter
