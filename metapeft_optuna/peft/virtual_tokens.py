"""Shared machinery of the methods that prepend trained virtual tokens to the input."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.cache import KVCache, make_prompt_cache
from optuna.distributions import IntDistribution

from ..errors import AdapterCreationError
from . import model_access
from .base import BaseAdapter
from .prefix_cache import PrefixCache
from .search import ParamSpec

# The search parameter the three virtual-token methods share (their own packages
# declare it in their part of the search space).
NUM_VIRTUAL_TOKENS = ParamSpec("num_virtual_tokens", IntDistribution(4, 32, log=True))


class _KeysAndValues:
    """One layer's cache for the virtual tokens' own pass (rotary positions from 0): it
    keeps the keys and values attention computed."""

    offset = 0

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        self.keys, self.values = keys, values
        return keys, values


class VirtualTokenAdapter(BaseAdapter):
    """Base of prompt tuning and P-tuning: ``virtual_tokens()`` go before the input.

    In training and scoring (no cache), the virtual tokens' keys and values are
    computed once per batch and every example attends to them as a prefix
    (:class:`~metapeft_optuna.peft.prefix_cache.PrefixCache`); on the first call of a
    decode (empty cache) the virtual token embeddings are concatenated in front of the
    input embeddings. Either way the returned hidden states hold the inputs' positions
    only, so the loss never sees the virtual ones.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.peft import PromptTuningAdapter, PromptTuningConfig
        >>> model, tokenizer, _ = load_model("tiny")
        >>> adapter = PromptTuningAdapter(model, PromptTuningConfig(num_virtual_tokens=3))
        >>> adapter(mx.array([tokenizer.encode("abc")])).shape  # the 3 virtual tokens are dropped
        (1, 3, 64)
    """

    def __init__(self, model: nn.Module, config: Any, tokenizer: Any = None):
        super().__init__(model, config, tokenizer)
        model_access.require_language_model(model, self.method.value, embeddings=True)
        context = getattr(getattr(model, "args", None), "max_position_embeddings", None)
        if context and config.num_virtual_tokens >= context:
            raise AdapterCreationError(
                f"{self.method}: num_virtual_tokens={config.num_virtual_tokens} does not fit "
                f"the model's context of {context} tokens; use fewer virtual tokens."
            )
        self.hidden_size = model_access.embedding_dim(model)
        # Models whose layers keep other caches (sliding windows, recurrent states) get
        # the virtual tokens in front of every example instead.
        self.shares_virtual_tokens = all(type(c) is KVCache for c in make_prompt_cache(model))

    @property
    def num_virtual_tokens(self) -> int:
        return self.config.num_virtual_tokens

    def virtual_tokens(self) -> mx.array:
        """The ``(num_virtual_tokens, hidden)`` embeddings to prepend."""
        raise NotImplementedError

    def __call__(self, inputs: mx.array, cache: list[Any] | None = None) -> mx.array:
        embeddings = model_access.embed(self.base, inputs)
        if cache is None and self.num_virtual_tokens and self.shares_virtual_tokens:
            # Training and scoring: the virtual tokens come first, so under causal
            # attention they see only each other and their keys and values are the same
            # for every example. One batch-1 pass computes them; the batch attends to
            # them as a prefix instead of running them once per example.
            own = [_KeysAndValues() for _ in self.base.layers]
            virtual = self.virtual_tokens().astype(embeddings.dtype)[None]
            model_access.hidden_states(self.base, None, own, virtual)
            cache = [PrefixCache(layer.keys[0], layer.values[0]) for layer in own]
            return model_access.hidden_states(self.base, None, cache, embeddings)
        prefill = cache is None or cache[0].offset == 0
        if not prefill or self.num_virtual_tokens == 0:
            return model_access.hidden_states(self.base, None, cache, embeddings)
        virtual = self.virtual_tokens().astype(embeddings.dtype)
        virtual = mx.broadcast_to(virtual[None], (inputs.shape[0], *virtual.shape))
        hidden = model_access.hidden_states(
            self.base, None, cache, mx.concatenate([virtual, embeddings], axis=1)
        )
        return hidden[:, self.num_virtual_tokens :]


def vocabulary_embeddings(
    model: nn.Module, count: int, token_ids: list[int] | None = None
) -> mx.array:
    """Embeddings of ``token_ids`` (or of ``count`` random vocabulary tokens)."""
    if token_ids is None:
        vocab = model.model.embed_tokens.weight.shape[0]
        token_ids = mx.random.randint(0, vocab, (count,))
    return model_access.embed(model, mx.array(token_ids)).astype(mx.float32)


def embedding_std(model: nn.Module) -> float:
    """Standard deviation of (a sample of) the model's token embeddings."""
    return float(mx.std(vocabulary_embeddings(model, 512)))
