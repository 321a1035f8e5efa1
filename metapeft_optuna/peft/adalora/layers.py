"""``SVDLinear``: a linear layer plus AdaLoRA's SVD-form update ``B diag(E) A``."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


class SVDLinear(nn.Module):
    """``linear(x) + (alpha / r) * dropout(x) @ (A * E)^T @ B^T``.

    ``lora_A`` (r, in) plays the paper's Q, ``lora_E`` (r, 1) the singular values
    Lambda, ``lora_B`` (out, r) P. E starts at zero (the layer starts unchanged); A and
    B start small and random, as in HF peft.

    Example:
        >>> layer = SVDLinear.from_base(nn.Linear(8, 4), r=2, alpha=4.0)
        >>> layer(mx.ones((1, 8))).shape
        (1, 4)
    """

    @staticmethod
    def from_base(
        linear: nn.Linear | nn.QuantizedLinear, r: int, alpha: float, dropout: float = 0.0
    ) -> SVDLinear:
        out_dims, in_dims = linear.weight.shape
        if isinstance(linear, nn.QuantizedLinear):
            in_dims = in_dims * 32 // linear.bits
        layer = SVDLinear(in_dims, out_dims, r, alpha, dropout)
        layer.linear = linear
        return layer

    def __init__(
        self, input_dims: int, output_dims: int, r: int, alpha: float, dropout: float = 0.0
    ):
        super().__init__()
        self.linear = nn.Linear(input_dims, output_dims, bias=False)
        self.dropout = nn.Dropout(p=dropout)
        self.scale = alpha / r  # HF divides by the initial rank, not the active one
        self.lora_A = mx.random.normal((r, input_dims)) * 0.02
        self.lora_E = mx.zeros((r, 1))
        self.lora_B = mx.random.normal((output_dims, r)) * 0.02

    def __call__(self, x: mx.array) -> mx.array:
        y = self.linear(x)
        update = (self.dropout(x) @ (self.lora_A * self.lora_E).T) @ self.lora_B.T
        return y + (self.scale * update).astype(x.dtype)

    def delta_weight(self) -> mx.array:
        return self.scale * (self.lora_B @ (self.lora_A * self.lora_E))

    def fuse(self, dequantize: bool = False) -> nn.Module:
        linear = self.linear
        quantized = isinstance(linear, nn.QuantizedLinear)
        weight = linear.weight
        if quantized:
            weight = mx.dequantize(
                weight,
                linear.scales,
                linear.get("biases"),
                group_size=linear.group_size,
                bits=linear.bits,
                mode=linear.mode,
            )
        fused = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in linear)
        fused.weight = weight + self.delta_weight().astype(weight.dtype)
        if "bias" in linear:
            fused.bias = linear.bias
        if quantized and not dequantize:
            fused = nn.QuantizedLinear.from_linear(
                fused, linear.group_size, linear.bits, mode=linear.mode
            )
        return fused
