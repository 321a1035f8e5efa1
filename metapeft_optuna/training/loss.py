"""The answer-only loss: hidden states for every position, logits only for answer tokens."""

from __future__ import annotations

import mlx.core as mx

from ..models.fast_math import cross_entropy
from ..peft import BaseAdapter
from .batching import Batch


def answer_logits(
    adapter: BaseAdapter, batch: Batch, below: mx.array | None = None, blocks: int = 0
) -> mx.array:
    """``(B, A, vocab)`` logits at the positions that predict the answer tokens.

    ``below``: the batch's hidden states after its first ``blocks`` frozen blocks
    (``(B, L, hidden)``, from :class:`~metapeft_optuna.training.frozen.FrozenBlocks`);
    the forward then starts there.
    """
    hidden = adapter(batch.tokens) if below is None else adapter.forward_from(below, blocks)
    selected = mx.take_along_axis(hidden, batch.positions[..., None], axis=1)
    return adapter.logits(selected)


def answer_loss(
    adapter: BaseAdapter, batch: Batch, below: mx.array | None = None, blocks: int = 0
) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over answer tokens (plus the adapter's own term), and their
    count. ``below``, ``blocks``: as for :func:`answer_logits`."""
    logits = answer_logits(adapter, batch, below, blocks).astype(mx.float32)
    ce = cross_entropy(logits, batch.targets) * batch.mask
    tokens = batch.mask.sum()
    loss = ce.sum() / tokens
    extra = adapter.extra_loss()
    if extra is not None:
        loss = loss + extra
    return loss, tokens
