"""Tokenised examples and length-bucketed batches with answer-only targets.

A batch holds right-padded input tokens plus, for every answer token, the position of
the hidden state that predicts it. The loss then projects only those positions to the
vocabulary. Right padding needs no attention mask: causal attention never looks ahead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import mlx.core as mx
import numpy as np

from ..tasks import Example

LENGTH_QUANTUM = 2  # pad lengths to even numbers: little padding, few recompilations
ANSWER_QUANTUM = 2


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one example: the model reads ``prompt + answer[:-1]``.

    Example:
        >>> EncodedExample((5, 6, 7), (8, 2)).length  # reads 5 6 7 8, predicts 8 and EOS 2
        4
    """

    prompt: tuple[int, ...]
    answer: tuple[int, ...]  # ends with the end-of-sequence token

    @property
    def length(self) -> int:
        return len(self.prompt) + len(self.answer) - 1


class Batch(NamedTuple):
    """Arrays for one step: ``tokens`` (B, L); ``positions``/``targets``/``mask`` (B, A);
    ``lengths`` (B,) real tokens per row. Only arrays, so compiled steps never retrace
    on a new Python value.

    Example:
        >>> batch = collate([EncodedExample((5, 6, 7), (8, 2))])
        >>> batch.positions.tolist(), batch.targets.tolist()
        ([[2, 3]], [[8, 2]])
    """

    tokens: mx.array
    positions: mx.array
    targets: mx.array
    mask: mx.array
    lengths: mx.array


def eos_id(tokenizer: Any) -> int:
    ids = getattr(tokenizer, "eos_token_ids", None)
    return min(ids) if ids else int(tokenizer.eos_token_id)


def encode_example(example: Example, tokenizer: Any) -> EncodedExample:
    """Tokenise prompt and answer separately (so scoring sees the same boundary)."""
    prompt = tokenizer.encode(example.render_prompt(tokenizer), add_special_tokens=False)
    answer = tokenizer.encode(example.completion, add_special_tokens=False) + [eos_id(tokenizer)]
    if not prompt:  # plain text: the first token is context, the rest is predicted
        prompt, answer = answer[:1], answer[1:]
    return EncodedExample(tuple(prompt), tuple(answer))


def encode_task_examples(examples: Sequence[Example], tokenizer: Any) -> list[EncodedExample]:
    return [encode_example(e, tokenizer) for e in examples]


def _round_up(value: int, quantum: int) -> int:
    return -(-value // quantum) * quantum


def collate(examples: Sequence[EncodedExample], pad_id: int = 0) -> Batch:
    """Right-pad ``examples`` into one :class:`Batch`."""
    length = _round_up(max(e.length for e in examples), LENGTH_QUANTUM)
    answers = _round_up(max(len(e.answer) for e in examples), ANSWER_QUANTUM)
    tokens = np.full((len(examples), length), pad_id, dtype=np.int32)
    positions = np.zeros((len(examples), answers), dtype=np.int32)
    targets = np.zeros((len(examples), answers), dtype=np.int32)
    mask = np.zeros((len(examples), answers), dtype=np.float32)
    for row, example in enumerate(examples):
        sequence = example.prompt + example.answer[:-1]
        tokens[row, : len(sequence)] = sequence
        n = len(example.answer)
        positions[row, :n] = np.arange(len(example.prompt) - 1, len(example.prompt) - 1 + n)
        targets[row, :n] = example.answer
        mask[row, :n] = 1.0
    lengths = np.array([e.length for e in examples], dtype=np.int32)
    return Batch(
        mx.array(tokens), mx.array(positions), mx.array(targets), mx.array(mask), mx.array(lengths)
    )


def iterate_batches(
    examples: Sequence[EncodedExample], batch_size: int, *, seed: int, pad_id: int = 0
) -> Iterator[Batch]:
    """Endless length-bucketed batches: sort by length, cut, shuffle the batch order.

    Every epoch reshuffles with a seeded generator, so a run is reproducible.
    """
    if not examples:
        raise ValueError("no training examples.")
    batch_size = min(batch_size, len(examples))
    rng = np.random.default_rng(seed)
    by_length = sorted(range(len(examples)), key=lambda i: examples[i].length)
    while True:
        # Jitter within equal lengths so the same examples do not always share a batch.
        order = sorted(by_length, key=lambda i: (examples[i].length, rng.random()))
        batches = [
            order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)
        ]
        for index in rng.permutation(len(batches)):
            yield collate([examples[i] for i in batches[index]], pad_id)
