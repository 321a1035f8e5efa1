"""``PrefixCache``: the KV-cache door through which prefixes enter mlx-lm attention."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.base import create_causal_mask


class PrefixCache:
    """A stateless per-layer cache that prepends fixed key/value prefixes.

    mlx-lm's attention calls ``cache.update_and_fetch(keys, values)`` and rotates the
    queries by ``cache.offset``; returning ``[prefix; keys]`` with ``offset = P`` gives
    exactly prefix tuning (the prefix keys are used as stored, un-rotated, as in HF peft).
    Nothing is stored, so one instance serves every training step. Prompt tuning and
    P-tuning pass their virtual tokens' keys and values this way too, computed once per
    batch (:class:`~metapeft_optuna.peft.virtual_tokens.VirtualTokenAdapter`).

    Args:
        keys: ``(num_kv_heads, P, head_dim)`` prefix keys (grouped-query attention: one
            prefix per key/value head, shared by the query heads of its group).
        values: Same shape, prefix values.

    Example:
        >>> cache = PrefixCache(mx.zeros((2, 3, 4)), mx.zeros((2, 3, 4)))
        >>> keys, values = cache.update_and_fetch(mx.ones((5, 2, 1, 4)), mx.ones((5, 2, 1, 4)))
        >>> keys.shape, cache.offset
        ((5, 2, 4, 4), 3)
    """

    def __init__(self, keys: mx.array, values: mx.array):
        self.prefix_keys = keys
        self.prefix_values = values
        self.offset = keys.shape[1]

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        batch = keys.shape[0]

        def prepend(prefix: mx.array, x: mx.array) -> mx.array:
            prefix = mx.broadcast_to(prefix[None], (batch, *prefix.shape)).astype(x.dtype)
            return mx.concatenate([prefix, x], axis=2)

        return prepend(self.prefix_keys, keys), prepend(self.prefix_values, values)

    def make_mask(self, N: int, return_array: bool = False, window_size: int | None = None):  # noqa: N803
        # "causal" in MLX aligns the diagonal to the last key, so every query sees the
        # whole prefix and the tokens up to itself.
        if return_array or window_size is not None:
            return create_causal_mask(N, self.offset, window_size=window_size)
        return "causal" if N > 1 else None
