"""LoRA and DoRA on a model's linear layers, through mlx-lm's own conversion."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten
from mlx_lm.tuner.dora import DoRALinear
from mlx_lm.tuner.lora import LoRALinear
from mlx_lm.tuner.utils import linear_to_lora_layers

from ...errors import AdapterCreationError
from .. import model_access
from ..base import BaseAdapter
from ..method import PEFTMethod
from ..registry import register_adapter
from .config import DoRAConfig, LoRAConfig

LORA_LAYERS = (LoRALinear, DoRALinear)


def replace_modules(model: nn.Module, replacements: list[tuple[str, nn.Module]]) -> None:
    """Swap the ``(dotted name, module)`` pairs into ``model`` in place."""
    if replacements:
        model.update_modules(tree_unflatten(replacements))


@register_adapter
class LoRAModelAdapter(BaseAdapter):
    """LoRA on the chosen linear layers of the last ``num_layers`` blocks.

    Language models are converted with mlx-lm's ``linear_to_lora_layers``, so the saved
    adapter is exactly what ``mlx_lm.generate --adapter-path`` and ``mlx_lm.fuse``
    expect. Plain models (``SimpleClassifier``) get mlx-lm's ``LoRALinear``/``DoRALinear``
    on every linear layer (or the ``target_modules`` named).

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> adapter = LoRAModelAdapter(model, LoRAConfig(rank=4, target_modules="attention"))
        >>> adapter.num_trainable_parameters  # 2 blocks x (q 512 + k 384 + v 384 + o 512)
        3584
    """

    method = PEFTMethod.LORA
    config_class = LoRAConfig
    use_dora = False

    def __init__(self, model: nn.Module, config: LoRAConfig, tokenizer: Any = None):
        super().__init__(model, config)
        if self.is_language_model:
            keys = model_access.resolve_target_keys(model, config.target_modules, self.method.value)
            blocks = model_access.target_blocks(model, config.num_layers, self.method.value)
            self.target_keys = tuple(keys)
            self.num_layers = len(blocks)
            # mlx-lm's `scale` is our alpha / rank.
            linear_to_lora_layers(
                model, self.num_layers, self.lora_parameters(), use_dora=self.use_dora
            )
        else:
            self._adapt_plain_model(model, config)

    def lora_parameters(self) -> dict[str, Any]:
        return {
            "rank": self.config.rank,
            "scale": self.config.scale,
            "dropout": self.config.dropout,
            "keys": list(self.target_keys),
        }

    def _adapt_plain_model(self, model: nn.Module, config: LoRAConfig) -> None:
        linears = {
            name: m
            for name, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.QuantizedLinear) and name
        }
        if isinstance(config.target_modules, tuple):
            missing = [k for k in config.target_modules if k not in linears]
            if missing:
                raise AdapterCreationError(
                    f"{self.method}: no linear layer(s) {missing}; the model has {sorted(linears)}."
                )
            linears = {k: linears[k] for k in config.target_modules}
        if not linears:
            raise AdapterCreationError(
                f"{self.method}: {type(model).__name__} has no linear layers to adapt."
            )
        self.target_keys, self.num_layers = tuple(sorted(linears)), 0
        layer = DoRALinear if self.use_dora else LoRALinear
        replace_modules(
            model,
            [
                (k, layer.from_base(m, r=config.rank, dropout=config.dropout, scale=config.scale))
                for k, m in linears.items()
            ],
        )

    def file_config(self) -> dict[str, Any]:
        return {
            **super().file_config(),
            "num_layers": self.num_layers,
            "lora_parameters": self.lora_parameters(),
        }

    def mlx_lm_files(self) -> tuple[dict[str, Any], dict[str, mx.array]]:
        """Our own files: they are mlx-lm's format (plus a ``metapeft`` section)."""
        return self.file_config(), self.adapter_weights()

    def fuse(self, dequantize: bool = False) -> nn.Module:
        """Merge ``scale * B A`` (and DoRA's magnitude) into plain linear layers.

        Returns the base model, which no longer contains adapter layers.
        """
        fused = [
            (name, m.fuse(dequantize=dequantize))
            for name, m in self.base.named_modules()
            if isinstance(m, LORA_LAYERS)
        ]
        replace_modules(self.base, fused)
        return self.base

    def detach(self) -> nn.Module:
        original = [
            (name, m.linear) for name, m in self.base.named_modules() if isinstance(m, LORA_LAYERS)
        ]
        replace_modules(self.base, original)
        return self.base


@register_adapter
class DoRAModelAdapter(LoRAModelAdapter):
    """DoRA (weight-decomposed LoRA): LoRA's update normalised per output row, times a
    trained magnitude ``m`` initialised to the base weight's row norms.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> DoRAModelAdapter(model, DoRAConfig(rank=4)).num_trainable_parameters  # LoRA + m
        1984
    """

    method = PEFTMethod.DORA
    config_class = DoRAConfig
    use_dora = True
