"""Prefix tuning through mlx-lm's KV cache."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .. import model_access
from ..base import BaseAdapter
from ..method import PEFTMethod
from ..prefix_cache import PrefixCache
from ..registry import register_adapter
from ..virtual_tokens import embedding_std, vocabulary_embeddings
from .config import PrefixTuningConfig


class PrefixProjection(nn.Module):
    """Li & Liang's reparameterisation: ``MLP(embedding)`` -> every layer's prefixes.

    Example:
        >>> PrefixProjection(mx.zeros((4, 16)), hidden_size=8, out_dims=32)().shape
        (4, 32)
    """

    def __init__(self, init_embeddings: mx.array, hidden_size: int, out_dims: int):
        super().__init__()
        self.embedding = init_embeddings
        self.layers = [
            nn.Linear(init_embeddings.shape[1], hidden_size),
            nn.Linear(hidden_size, out_dims),
        ]

    def __call__(self) -> mx.array:
        return self.layers[1](mx.tanh(self.layers[0](self.embedding)))


@register_adapter
class PrefixTuningAdapter(BaseAdapter):
    """Trainable per-layer key/value prefixes of length ``num_virtual_tokens``.

    Prefix arrays have shape ``(layers, kv_heads, P, head_dim)``, so grouped-query
    attention models carry one prefix per key/value head.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> adapter = PrefixTuningAdapter(model, PrefixTuningConfig(num_virtual_tokens=10))
        >>> adapter.num_trainable_parameters  # 2 layers x (k, v) x 2 kv heads x 10 x 16
        1280
    """

    method = PEFTMethod.PREFIX_TUNING
    config_class = PrefixTuningConfig

    def __init__(self, model: nn.Module, config: PrefixTuningConfig, tokenizer: Any = None):
        super().__init__(model, config, tokenizer)
        model_access.require_language_model(model, self.method.value)
        self.geometry = model_access.attention_geometry(model)
        layers, kv_heads, head_dim = self.geometry
        count = config.num_virtual_tokens
        if config.projection:
            out_dims = layers * 2 * kv_heads * head_dim
            self.projection = PrefixProjection(
                vocabulary_embeddings(model, count), config.encoder_hidden_size, out_dims
            )
        elif config.init == "vocab" and count:
            self.prefix_keys, self.prefix_values = self._vocabulary_prefixes(count)
        else:
            shape = (layers, kv_heads, count, head_dim)
            std = 0.1 * embedding_std(model)
            self.prefix_keys = mx.random.normal(shape) * std
            self.prefix_values = mx.random.normal(shape) * std

    def _vocabulary_prefixes(self, count: int) -> tuple[mx.array, mx.array]:
        """Each layer's keys/values for ``count`` random vocabulary tokens."""
        vocab = self.base.model.embed_tokens.weight.shape[0]
        cache = super().make_cache()
        model_access.hidden_states(self.base, mx.random.randint(0, vocab, (1, count)), cache)
        keys = mx.stack([c.keys[0, :, :count] for c in cache]).astype(mx.float32)
        values = mx.stack([c.values[0, :, :count] for c in cache]).astype(mx.float32)
        return mx.stop_gradient(keys), mx.stop_gradient(values)

    def prefixes(self) -> tuple[mx.array, mx.array]:
        """``(keys, values)``, each ``(layers, kv_heads, P, head_dim)``."""
        if "projection" not in self:
            return self.prefix_keys, self.prefix_values
        layers, kv_heads, head_dim = self.geometry
        flat = self.projection().reshape(-1, layers, 2, kv_heads, head_dim)
        flat = flat.transpose(1, 2, 3, 0, 4)  # (layers, 2, kv_heads, P, head_dim)
        return flat[:, 0], flat[:, 1]

    def __call__(self, inputs: mx.array, cache: list[Any] | None = None) -> mx.array:
        if cache is None and self.config.num_virtual_tokens:
            keys, values = self.prefixes()
            cache = [PrefixCache(k, v) for k, v in zip(keys, values)]
        return model_access.hidden_states(self.base, inputs, cache)

    def make_cache(self, batch_size: int = 1) -> list[Any]:
        """A KV cache that already holds the prefix, for incremental decoding."""
        cache = super().make_cache()
        if self.config.num_virtual_tokens:
            for layer_cache, k, v in zip(cache, *self.prefixes()):
                layer_cache.update_and_fetch(
                    mx.broadcast_to(k[None], (batch_size, *k.shape)),
                    mx.broadcast_to(v[None], (batch_size, *v.shape)),
                )
        return cache

    def adapter_weights(self) -> dict[str, mx.array]:
        """The prefixes themselves: a projection MLP is dropped from saved adapters."""
        keys, values = self.prefixes()
        return {"prefix_keys": keys, "prefix_values": values}

    def file_config(self) -> dict[str, Any]:
        data = super().file_config()
        data["metapeft"]["config"]["projection"] = False
        data["metapeft"]["trained_with_projection"] = self.config.projection
        return data
