"""Hidden states of the frozen lower blocks, computed once per example within a trial.

LoRA, DoRA and AdaLoRA on the last blocks only (``lora_layer_fraction`` below 1) leave
the blocks below them frozen and unchanged (:attr:`BaseAdapter.frozen_blocks`): what
those blocks output for an example depends on its tokens alone, yet every step that
revisits the example would compute it again. :class:`FrozenBlocks` computes it the first
time a trial meets the example and reuses it for the rest of the trial. It lives for one
trial, so a trial's time and memory do not depend on what ran before it. Right padding
changes nothing: causal attention never looks ahead, so an example's states are the
same alone and in any batch.

The validation and test examples' states serve every trial of a study that freezes the
same blocks (``PreparedTask.eval_states``): evaluation is neither a time nor a memory
objective, and those states are kept in host memory (``on_host``), outside what MLX
counts as a later trial's peak memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from ..peft import BaseAdapter
from ..peft.model_access import blocks_below
from .batching import EncodedExample, collate


class FrozenBlocks:
    """Per-example hidden states after an adapter's frozen lower blocks, filled lazily.

    Args:
        adapter: The adapter being trained.
        examples: The examples batches index into (the training split).
        blocks: ``adapter.frozen_blocks``, when the caller has it already; above 0.
        on_host: Keep the states as NumPy arrays (float32), outside MLX's memory.

    Raises:
        ValueError: The adapter has no frozen lower blocks.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.peft import AdapterFactory
        >>> model, _, _ = load_model("tiny")
        >>> adapter = AdapterFactory.create_adapter("lora", model, {"rank": 4, "num_layers": 1})
        >>> examples = [EncodedExample((5, 6, 7), (8, 2)), EncodedExample((5,), (9, 2))]
        >>> FrozenBlocks(adapter, examples).batch([1, 0], length=4).shape  # 1 of 2 blocks
        (2, 4, 64)
    """

    def __init__(
        self,
        adapter: BaseAdapter,
        examples: Sequence[EncodedExample],
        blocks: int | None = None,
        *,
        on_host: bool = False,
    ):
        self.blocks = adapter.frozen_blocks if blocks is None else blocks
        if self.blocks < 1:
            raise ValueError(f"{adapter.method}: no frozen lower blocks to reuse.")
        self.model, self.examples, self.on_host = adapter.base, examples, on_host
        self._hidden: dict[int, mx.array | np.ndarray] = {}
        self._dtype = mx.float32

    def batch(self, indices: Sequence[int], length: int) -> mx.array:
        """``(len(indices), length, hidden)``: the examples' states, right-padded with
        zeros to ``length`` (the collated batch's length)."""
        missing = [i for i in dict.fromkeys(indices) if i not in self._hidden]
        if missing:
            tokens = collate([self.examples[i] for i in missing]).tokens
            hidden = blocks_below(self.model, tokens, self.blocks)
            self._dtype = hidden.dtype
            if self.on_host:  # NumPy has no bfloat16
                hidden = np.array(hidden.astype(mx.float32))
            else:
                mx.eval(hidden)
            for row, i in enumerate(missing):
                self._hidden[i] = hidden[row, : self.examples[i].length]
        rows = [self._hidden[i] for i in indices]
        if self.on_host:
            padded = np.zeros((len(rows), length, rows[0].shape[-1]), dtype=np.float32)
            for row, h in enumerate(rows):
                padded[row, : h.shape[0]] = h
            return mx.array(padded).astype(self._dtype)
        return mx.stack([mx.pad(h, [(0, length - h.shape[0]), (0, 0)]) for h in rows])
