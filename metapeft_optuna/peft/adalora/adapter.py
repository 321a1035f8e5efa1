"""AdaLoRA attached to a language model's linear layers."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ...errors import AdapterCreationError
from .. import model_access
from ..base import BASE_PREFIX, BaseAdapter
from ..lora.adapter import replace_modules
from ..method import PEFTMethod
from ..registry import register_adapter
from .allocator import RankAllocator
from .config import AdaLoRAConfig
from .layers import SVDLinear


@register_adapter
class AdaLoRAModelAdapter(BaseAdapter):
    """AdaLoRA: SVD-form adapters whose ranks are reallocated by importance while training.

    The trainer adds :meth:`extra_loss` (the orthogonality regulariser
    ``||A A^T - I||_F + ||B^T B - I||_F``, averaged over matrices) to the loss and calls
    :meth:`after_step` with each step's gradients, which runs the budget schedule.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> adapter = AdaLoRAModelAdapter(model, AdaLoRAConfig(init_r=4, target_r=2,
        ...                                                    total_step=10))
        >>> adapter.num_trainable_parameters, adapter.active_rank()
        (1808, 4.0)
    """

    method = PEFTMethod.ADALORA
    config_class = AdaLoRAConfig
    needs_step_gradients = True

    def __init__(self, model: nn.Module, config: AdaLoRAConfig, tokenizer: Any = None):
        super().__init__(model, config)
        model_access.require_language_model(model, self.method.value)
        keys = model_access.resolve_target_keys(model, config.target_modules, "adalora")
        blocks = model_access.target_blocks(model, config.num_layers, "adalora")
        first = len(model.layers) - len(blocks)
        layers = []
        for offset, block in enumerate(blocks):
            modules = dict(block.named_modules())
            for key in keys:
                path = f"model.layers.{first + offset}.{key}"
                layers.append(
                    (
                        path,
                        SVDLinear.from_base(
                            modules[key], config.init_r, config.alpha, config.dropout
                        ),
                    )
                )
        replace_modules(model, layers)
        self.svd_paths = tuple(path for path, _ in layers)
        self._allocator: RankAllocator | None = None

    def svd_modules(self) -> dict[str, SVDLinear]:
        modules = dict(self.base.named_modules())
        return {path: modules[path] for path in self.svd_paths}

    @property
    def allocator(self) -> RankAllocator:
        if self._allocator is None:
            if self.config.total_step is None:
                raise AdapterCreationError(
                    "adalora: AdaLoRAConfig.total_step is None; set it to the number of "
                    "training steps so the rank budget schedule can run."
                )
            self._allocator = RankAllocator(self.config, self.svd_modules())
        return self._allocator

    def extra_loss(self) -> mx.array | None:
        if self.config.orth_reg_weight == 0:
            return None
        total, count = mx.array(0.0), 0
        for module in self.svd_modules().values():
            a, b = module.lora_A, module.lora_B
            eye = mx.eye(a.shape[0])
            total = total + _frobenius(a @ a.T - eye) + _frobenius(b.T @ b - eye)
            count += 2
        return self.config.orth_reg_weight * total / count

    def after_step(self, step: int, gradients: dict[str, Any]) -> None:
        flat = {name.removeprefix(BASE_PREFIX): g for name, g in tree_flatten(gradients)}
        self.allocator.step(step, flat)

    def active_ranks(self) -> dict[str, int]:
        """Allocated rank (singular values kept by the last reallocation) per module."""
        pattern = self._allocator.rank_pattern if self._allocator is not None else None
        if pattern is None:
            return {path: self.config.init_r for path in self.svd_paths}
        return {path: int(pattern[path].sum()) for path in self.svd_paths}

    def active_rank(self) -> float:
        """Mean active rank over the adapted modules."""
        ranks = self.active_ranks()
        return sum(ranks.values()) / len(ranks)

    def mlx_lm_files(self) -> tuple[dict[str, Any], dict[str, mx.array]]:
        """The adapter as an mlx-lm LoRA of rank ``init_r`` with identical outputs.

        AdaLoRA's update ``scale * B diag(E) A`` is a LoRA update with mlx-lm's
        ``lora_a = (A * E)^T`` (in, r) and ``lora_b = B^T`` (r, out) at the same scale;
        singular values pruned by the rank allocation are zeros of E, so they stay null.
        """
        weights = {}
        for path, module in self.svd_modules().items():
            weights[f"{path}.lora_a"] = (module.lora_A * module.lora_E).T
            weights[f"{path}.lora_b"] = module.lora_B.T
        # Paths are model.layers.<block>.<key>: the adapted keys and blocks (the last ones).
        keys = sorted({p.split(".", 3)[3] for p in self.svd_paths})
        config = {
            "fine_tune_type": "lora",
            "num_layers": len({p.split(".")[2] for p in self.svd_paths}),
            "lora_parameters": {
                "rank": self.config.init_r,
                "scale": self.config.alpha / self.config.init_r,
                "dropout": 0.0,
                "keys": keys,
            },
        }
        return config, weights

    def fuse(self, dequantize: bool = False) -> nn.Module:
        replace_modules(self.base, [(p, m.fuse(dequantize)) for p, m in self.svd_modules().items()])
        return self.base

    def detach(self) -> nn.Module:
        replace_modules(self.base, [(p, m.linear) for p, m in self.svd_modules().items()])
        return self.base


def _frobenius(x: mx.array) -> mx.array:
    return mx.sqrt(mx.sum(x * x))
