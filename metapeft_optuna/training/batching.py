"""Tokenised examples and length-bucketed batches with answer-only targets.

A batch holds right-padded input tokens plus, for every answer token, the position of
the hidden state that predicts it. The loss then projects only those positions to the
vocabulary. Right padding needs no attention mask: causal attention never looks ahead.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

import mlx.core as mx
import numpy as np

from ..tasks import Example

LENGTH_QUANTUM = 2  # pad lengths to even numbers: little padding, few recompilations
EVAL_BATCH = 32  # examples per evaluation forward pass
ANSWER_QUANTUM = 2
NAMED_OFFENDERS = 3  # examples a truncation warning names by file:line


class TruncationWarning(UserWarning):
    """Some examples were longer than ``max_length`` and were truncated or dropped."""


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one example: the model reads ``prompt + answer[:-1]``.

    Example:
        >>> EncodedExample((5, 6, 7), (8, 2)).length  # reads 5 6 7 8, predicts 8 and EOS 2
        4
    """

    prompt: tuple[int, ...]
    answer: tuple[int, ...]  # ends with the end-of-sequence token, unless truncated

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
    """The tokenizer's end-of-sequence id (the lowest, when mlx-lm's ``TokenizerWrapper``
    lists several), appended to every answer so the model learns where it stops."""
    ids = getattr(tokenizer, "eos_token_ids", None)
    return min(ids) if ids else int(tokenizer.eos_token_id)


@overload
def encode_example(example: Example, tokenizer: Any, max_length: None = None) -> EncodedExample: ...


@overload
def encode_example(example: Example, tokenizer: Any, max_length: int) -> EncodedExample | None: ...


def encode_example(
    example: Example, tokenizer: Any, max_length: int | None = None
) -> EncodedExample | None:
    """Tokenise prompt and answer separately (so scoring sees the same boundary).

    Args:
        example: The example.
        tokenizer: Its ``encode`` gives token ids; the answer ends with the EOS token.
        max_length: Most tokens the model may read (:attr:`EncodedExample.length`);
            longer examples are cut as :func:`truncate_example` does. None: no limit.

    Returns:
        The encoded example; None when ``max_length`` leaves no answer token.
    """
    prompt = tokenizer.encode(example.render_prompt(tokenizer), add_special_tokens=False)
    answer = tokenizer.encode(example.completion, add_special_tokens=False) + [eos_id(tokenizer)]
    if not prompt:  # plain text: the first token is context, the rest is predicted
        prompt, answer = answer[:1], answer[1:]
    encoded = EncodedExample(tuple(prompt), tuple(answer))
    return encoded if max_length is None else truncate_example(encoded, max_length)


def truncate_example(encoded: EncodedExample, max_length: int) -> EncodedExample | None:
    """Cut ``encoded`` to ``max_length`` model-read tokens, keeping the first ones.

    As mlx-lm's ``iterate_batches`` does with ``max_seq_length``: the sequence
    ``prompt + answer`` keeps its first tokens, so the answer keeps the tokens that fit
    (and loses its EOS token when cut).

    Args:
        encoded: The example.
        max_length: Most tokens the model may read; at least 1.

    Returns:
        ``encoded`` itself when it fits; a copy with a shortened answer; or None when
        the prompt alone leaves no answer token to learn.

    Raises:
        ValueError: ``max_length`` is below 1.

    Example:
        >>> truncate_example(EncodedExample((5, 6, 7), (8, 9, 2)), max_length=4)
        EncodedExample(prompt=(5, 6, 7), answer=(8, 9))
        >>> truncate_example(EncodedExample((5, 6, 7), (8, 2)), max_length=2) is None
        True
    """
    if max_length < 1:
        raise ValueError(f"max_length={max_length}; it must be at least 1.")
    if encoded.length <= max_length:
        return encoded
    # The model reads prompt + answer[:-1], so max_length + 1 tokens of the sequence fit.
    fitting = max_length + 1 - len(encoded.prompt)
    if fitting < 1:
        return None
    return EncodedExample(encoded.prompt, encoded.answer[:fitting])


def encode_task_examples(
    examples: Sequence[Example], tokenizer: Any, max_length: int | None = None
) -> list[EncodedExample]:
    """Encode ``examples``, truncating (or dropping) those longer than ``max_length``.

    Args:
        examples: The examples, in order.
        tokenizer: As for :func:`encode_example`.
        max_length: Most tokens the model may read per example, typically the model's
            context length; None: no limit.

    Returns:
        The encoded examples, in order, without the dropped ones.

    Warns:
        TruncationWarning: Once per call when any example was truncated or dropped,
            with counts, the longest length, and the ``file:line`` of the first ones.
    """
    encoded = [encode_example(e, tokenizer) for e in examples]
    if max_length is None:
        return encoded
    kept: list[EncodedExample] = []
    long: list[tuple[int, int, bool]] = []  # (index, length, dropped)
    for index, item in enumerate(encoded):
        if item.length <= max_length:
            kept.append(item)
            continue
        cut = truncate_example(item, max_length)
        long.append((index, item.length, cut is None))
        if cut is not None:
            kept.append(cut)
    if long:
        message = _truncation_message(examples, long, max_length)
        warnings.warn(message, TruncationWarning, stacklevel=2)
    return kept


def _truncation_message(
    examples: Sequence[Example], long: list[tuple[int, int, bool]], max_length: int
) -> str:
    def where(index: int) -> str:
        return examples[index].origin or f"example {index + 1}"

    index, length, dropped = long[0]
    if dropped:
        first = (
            f"{where(index)}: example is {length} tokens and its prompt alone fills "
            f"max_length={max_length}; dropped it (no answer token would be left)"
        )
    else:
        first = (
            f"{where(index)}: example is {length} tokens; truncated to "
            f"max_length={max_length}, keeping its first tokens, as mlx-lm does"
        )
    n_dropped = sum(d for _, _, d in long)
    n_cut = len(long) - n_dropped
    if not n_dropped:
        summary = f"{n_cut} of {len(examples)} examples truncated"
    elif not n_cut:
        summary = f"{n_dropped} of {len(examples)} examples dropped"
    else:
        summary = (
            f"{len(long)} of {len(examples)} examples too long "
            f"({n_cut} truncated, {n_dropped} dropped)"
        )
    others = ", ".join(where(i) for i, _, _ in long[1:NAMED_OFFENDERS])
    if others:
        summary += f" (also {others}{', ...' if len(long) > NAMED_OFFENDERS else ''})"
    return (
        f"{first}; {summary}; the longest is {max(n for _, n, _ in long)} tokens. "
        "Shorten or split long examples to train on them whole."
    )


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


def batch_indices(
    examples: Sequence[EncodedExample], batch_size: int, *, seed: int
) -> Iterator[list[int]]:
    """Endless length-bucketed batches of indices into ``examples``: sort by length,
    cut, shuffle the batch order.

    Every epoch reshuffles with a seeded generator, so a run is reproducible.

    Example:
        >>> examples = [EncodedExample((5,) * n, (2,)) for n in (3, 1, 2, 4)]
        >>> next(batch_indices(examples, 2, seed=0))  # the two shortest, this time
        [1, 2]
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
            yield batches[index]


def iterate_batches(
    examples: Sequence[EncodedExample], batch_size: int, *, seed: int, pad_id: int = 0
) -> Iterator[Batch]:
    """The batches of :func:`batch_indices`, collated."""
    for indices in batch_indices(examples, batch_size, seed=seed):
        yield collate([examples[i] for i in indices], pad_id)
