"""Swap slow layers of mlx-lm models for ones built on :mod:`fast_math` (CPU only).

Only the activation changes: the swapped module holds the very same linear layers
under the same names, so parameter paths (``model.layers.N.mlp.gate_proj.weight``),
adapters and saved files are unaffected.
"""

from __future__ import annotations

import os

import mlx.core as mx
import mlx.nn as nn

from .fast_math import swiglu

ENV_VAR = "METAPEFT_FAST_KERNELS"
# mlx-lm MLP classes whose forward is exactly down(silu(gate(x)) * up(x)).
SWIGLU_MLPS = {"mlx_lm.models.llama.MLP", "mlx_lm.models.qwen2.MLP", "mlx_lm.models.qwen3.MLP"}


class FastSwiGLUMLP(nn.Module):
    """``down_proj(silu(gate_proj(x)) * up_proj(x))`` with the fast SwiGLU.

    Example:
        >>> from mlx_lm.models.llama import MLP, ModelArgs
        >>> args = ModelArgs("llama", 8, 1, 16, 2, 1e-5, 32)
        >>> mlp = MLP(args)
        >>> x = mx.random.normal((1, 3, 8))
        >>> bool(mx.allclose(FastSwiGLUMLP(mlp)(x), mlp(x), atol=1e-5))
        True
    """

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.gate_proj = mlp.gate_proj
        self.up_proj = mlp.up_proj
        self.down_proj = mlp.down_proj

    def __call__(self, x: mx.array) -> mx.array:
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


def fast_kernels_enabled() -> bool:
    """True on the CPU backend unless ``METAPEFT_FAST_KERNELS=0``."""
    if os.environ.get(ENV_VAR, "1").strip().lower() in {"0", "off", "false", "no"}:
        return False
    return mx.default_device() == mx.cpu


def use_fast_layers(model: nn.Module) -> int:
    """Replace every known SwiGLU MLP of ``model`` in place; returns how many."""
    count = 0
    for layer in getattr(model, "layers", []):
        mlp = layer.get("mlp") if isinstance(layer, nn.Module) else None
        kind = f"{type(mlp).__module__}.{type(mlp).__name__}"
        if kind in SWIGLU_MLPS:
            layer.mlp = FastSwiGLUMLP(mlp)
            count += 1
    return count
