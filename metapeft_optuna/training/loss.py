"""The answer-only loss: hidden states for every position, logits only for answer tokens."""

from __future__ import annotations

import mlx.core as mx

from ..models.fast_math import cross_entropy
from ..peft import BaseAdapter
from .batching import Batch


def answer_logits(adapter: BaseAdapter, batch: Batch) -> mx.array:
    """``(B, A, vocab)`` logits at the positions that predict the answer tokens."""
    hidden = adapter(batch.tokens)
    selected = mx.take_along_axis(hidden, batch.positions[..., None], axis=1)
    return adapter.logits(selected)


def answer_loss(adapter: BaseAdapter, batch: Batch) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over answer tokens (plus the adapter's own term), and their count."""
    logits = answer_logits(adapter, batch).astype(mx.float32)
    ce = cross_entropy(logits, batch.targets) * batch.mask
    tokens = batch.mask.sum()
    loss = ce.sum() / tokens
    extra = adapter.extra_loss()
    if extra is not None:
        loss = loss + extra
    return loss, tokens
