"""The compiled training step."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from ..peft import BaseAdapter
from .batching import Batch
from .loss import answer_loss

COMPILE_ENV_VAR = "METAPEFT_COMPILE"


def compile_enabled() -> bool:
    """True unless ``METAPEFT_COMPILE=0``.

    Compiling a step costs about 0.45 s at a new shape in a fresh process, with
    SmolLM2-135M (then 0.44 s per step against 0.52 s uncompiled), so it pays after a
    handful of steps. For a model as small as the test suite's tiny llama it never does:
    1-2 s of compilation per configuration against about 10 ms per step either way.
    """
    return os.environ.get(COMPILE_ENV_VAR, "1").strip().lower() not in {"0", "off", "false", "no"}


def make_optimizer(
    learning_rate: float, steps: int, warmup_fraction: float = 0.1, weight_decay: float = 0.0
) -> optim.Optimizer:
    """AdamW with linear warm-up and cosine decay to a tenth of the peak rate."""
    warmup = max(1, int(steps * warmup_fraction))
    schedule = optim.join_schedules(
        [
            optim.linear_schedule(learning_rate * 0.1, learning_rate, warmup),
            optim.cosine_decay(learning_rate, max(1, steps - warmup), learning_rate * 0.1),
        ],
        [warmup],
    )
    return optim.AdamW(learning_rate=schedule, weight_decay=weight_decay)


def make_train_step(
    adapter: BaseAdapter,
    optimizer: optim.Optimizer,
    *,
    max_grad_norm: float | None = 1.0,
    compile: bool | None = None,
    frozen_blocks: int = 0,
) -> Callable[..., tuple[mx.array, mx.array, Any]]:
    """Build ``step(batch) -> (loss, answer tokens, gradients or None)``.

    The step is compiled (``compile``; default :func:`compile_enabled`) with the
    adapter's and optimizer's state (and the random state, for dropout) as implicit
    inputs and outputs. Gradients are returned only to adapters that ask for them
    (AdaLoRA's budget allocator).

    With ``frozen_blocks`` > 0 the step is ``step(batch, below)``: ``below`` holds the
    batch's hidden states after that many frozen blocks (``FrozenBlocks.batch``), and
    the forward starts there.
    """
    loss_and_grad = nn.value_and_grad(adapter, answer_loss)
    want_gradients = adapter.needs_step_gradients

    def step(batch: Batch, below: mx.array | None = None):
        (loss, tokens), grads = loss_and_grad(adapter, batch, below, frozen_blocks)
        if max_grad_norm is not None:
            grads, _ = optim.clip_grad_norm(grads, max_grad_norm)
        optimizer.update(adapter, grads)
        return loss, tokens, (grads if want_gradients else None)

    if not (compile_enabled() if compile is None else compile):
        return step
    state = [adapter.state, optimizer.state, mx.random.state]
    return partial(mx.compile, inputs=state, outputs=state)(step)
