"""Classification answers as label token sequences, and choosing among them.

When the labels' first tokens differ, the label whose first token scores highest wins
(constrained greedy decoding: one forward pass, logits at the first answer position
only); otherwise the label with the highest summed token log-likelihood wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..peft import BaseAdapter
from ..tasks import Task
from .batching import EVAL_BATCH, EncodedExample, collate, eos_id
from .loss import answer_logits


@dataclass(frozen=True)
class LabelSet:
    """A classification task's answer set as token sequences (each ending with EOS).

    Example:
        >>> labels = LabelSet((" no", " yes"), ((11, 2), (12, 2)))
        >>> labels.first_tokens, labels.first_tokens_distinct
        ((11, 12), True)
    """

    labels: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]

    @property
    def first_tokens(self) -> tuple[int, ...]:
        return tuple(ids[0] for ids in self.token_ids)

    @property
    def first_tokens_distinct(self) -> bool:
        return len(set(self.first_tokens)) == len(self.token_ids)

    @classmethod
    def from_task(cls, task: Task, tokenizer: Any) -> LabelSet | None:
        if task.task_type != "classification":
            return None
        end = eos_id(tokenizer)
        ids = tuple(
            tuple(tokenizer.encode(label, add_special_tokens=False)) + (end,)
            for label in task.labels
        )
        return cls(task.labels, ids)


def classify(
    adapter: BaseAdapter, examples: Sequence[EncodedExample], labels: LabelSet
) -> list[int]:
    """Index of the predicted label for each example."""
    if labels.first_tokens_distinct:
        first = mx.array(labels.first_tokens)
        predictions: dict[int, int] = {}
        order = sorted(range(len(examples)), key=lambda i: examples[i].length)
        for start in range(0, len(order), EVAL_BATCH):
            idx = order[start : start + EVAL_BATCH]
            # Logits only at the last prompt position, for the label tokens only.
            batch = collate([EncodedExample(examples[i].prompt, (0,)) for i in idx])
            scores = answer_logits(adapter, batch)[:, 0][:, first]
            for i, choice in zip(idx, mx.argmax(scores, axis=-1).tolist()):
                predictions[i] = choice
        return [predictions[i] for i in range(len(examples))]
    return classify_by_likelihood(adapter, examples, labels)


def classify_by_likelihood(
    adapter: BaseAdapter, examples: Sequence[EncodedExample], labels: LabelSet
) -> list[int]:
    """Index of each example's most likely label."""
    return label_log_likelihoods(adapter, examples, labels).argmax(axis=1).tolist()


def label_log_likelihoods(
    adapter: BaseAdapter, examples: Sequence[EncodedExample], labels: LabelSet
) -> np.ndarray:
    """``(examples, labels)``: each label's summed token log-likelihood after each
    example's prompt, less that of the labels' common first tokens.

    The prompt, with the labels' common first tokens (alike for every label, so they do
    not change the ranking), runs once per example; each label's other tokens run from
    a copy of its KV cache, as one batch.
    """
    ids = labels.token_ids
    shared = 0
    while shared < min(map(len, ids)) - 1 and len({t[shared] for t in ids}) == 1:
        shared += 1
    rest = [t[shared:] for t in ids]
    width = max(map(len, rest))
    first = mx.array([t[0] for t in rest])
    inputs = np.zeros((len(rest), max(width - 1, 1)), dtype=np.int32)
    targets, mask = inputs.copy(), np.zeros(inputs.shape, dtype=np.float32)
    for row, tokens in enumerate(rest):
        inputs[row, : len(tokens) - 1] = tokens[:-1]
        targets[row, : len(tokens) - 1] = tokens[1:]
        mask[row, : len(tokens) - 1] = 1.0
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_length[len(e.prompt)].append(i)
    scored = np.zeros((len(examples), len(rest)))
    for group in by_length.values():
        for start in range(0, len(group), EVAL_BATCH):
            idx = group[start : start + EVAL_BATCH]
            cache = adapter.make_cache(batch_size=len(idx))
            prompts = mx.array([list(examples[i].prompt) + list(ids[0][:shared]) for i in idx])
            last = adapter.logits(adapter(prompts, cache)[:, -1]).astype(mx.float32)
            scores = (last - mx.logsumexp(last, axis=-1, keepdims=True))[:, first]
            if width > 1:
                for layer in cache:  # one copy of each example's cache per label
                    keys, values = layer.keys_and_values()
                    copies = len(rest)
                    layer.state = (
                        mx.repeat(keys, copies, 0),
                        mx.repeat(values, copies, 0),
                        keys.shape[2],
                    )
                    layer.step = width  # grow by what the labels need, not 256 positions
                hidden = adapter(mx.array(np.tile(inputs, (len(idx), 1))), cache)
                logits = adapter.logits(hidden).astype(mx.float32)
                nll = nn.losses.cross_entropy(logits, mx.array(np.tile(targets, (len(idx), 1))))
                nll = (nll * mx.array(np.tile(mask, (len(idx), 1)))).sum(axis=1)
                scores = scores - nll.reshape(len(idx), len(rest))
            scored[idx] = np.array(scores)
    return scored
