"""Scoring a fine-tuned adapter on held-out examples.

- Classification: the label with the highest score wins. When the labels' first tokens
  differ, that is constrained greedy decoding (one forward pass, logits at the first
  answer position only); otherwise every label's full log-likelihood is compared.
- Generation: greedy decoding with a KV cache, then exact match after normalisation.
  Greedy decoding repeats the reference up to the first answer position where the
  teacher-forced arg-max is wrong, and emits that arg-max there; so the single forward
  pass of the loss already decides most examples (a hit when every arg-max is right, a
  miss when the first wrong token cannot be normalised back onto the reference), and
  only the rest are decoded. Learning curves use teacher-forced token exact match.
- Language modelling: next-token accuracy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..peft import BaseAdapter
from ..tasks import Task, normalize_answer
from .batching import EncodedExample, collate, eos_id
from .loss import answer_logits

EVAL_BATCH = 32


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


@dataclass(frozen=True)
class Evaluation:
    """Loss and metric on a set of examples, with their standard errors.

    Attributes:
        loss: Mean cross-entropy of the answer tokens (nats per token, all tokens of all
            examples weighted alike, as mlx-lm's validation loss).
        metric: Label accuracy, token exact match or next-token accuracy (a fraction).
        count: Number of examples.
        loss_se: Standard error of ``loss`` (examples as clusters of tokens).
        metric_se: Standard error of ``metric``.
        hits: Per example, in the order given: whether it scored (classification and
            generation; empty for language modelling).
        greedy_prefixes: Generation only, per example in the order given: the answer
            tokens greedy decoding is known to emit, the reference up to its first
            wrong arg-max followed by that arg-max (the whole reference when none is
            wrong).

    Example:
        >>> Evaluation(loss=0.7, metric=0.5, count=10).metric
        0.5
    """

    loss: float
    metric: float
    count: int
    loss_se: float = float("nan")
    metric_se: float = float("nan")
    hits: tuple[bool, ...] = field(default=(), repr=False)
    greedy_prefixes: tuple[tuple[int, ...], ...] = field(default=(), repr=False)


def ratio_mean_and_se(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """``sum(sums) / sum(counts)`` and its standard error with each example as a cluster
    (the ratio estimator's linearised variance): tokens of one example are not
    independent, examples are.

    Example:
        >>> mean, se = ratio_mean_and_se(np.array([1.0, 3.0]), np.array([1, 1]))
        >>> mean, round(se, 3)
        (2.0, 1.0)
    """
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    mean = float(sums.sum() / counts.sum())
    m = len(sums)
    if m < 2:
        return mean, float("nan")
    residual = sums - mean * counts
    return mean, float(np.sqrt((residual**2).sum() / (m - 1) / m) / counts.mean())


def proportion_se(p: float, n: int) -> float:
    """Standard error ``sqrt(p (1 - p) / n)`` of a proportion measured on ``n`` examples."""
    return float(np.sqrt(p * (1 - p) / n)) if n > 0 else float("nan")


def _batches(examples: Sequence[EncodedExample]):
    """``(indices, examples)`` chunks sorted by length, so each batch is padded little."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].length)
    for start in range(0, len(order), EVAL_BATCH):
        idx = order[start : start + EVAL_BATCH]
        yield idx, [examples[i] for i in idx]


def teacher_forced(
    adapter: BaseAdapter,
    examples: Sequence[EncodedExample],
    task_type: str,
    labels: LabelSet | None,
) -> Evaluation:
    """Loss and metric from one forward pass per batch (learning curves, and the test
    split's loss).

    The metric is label accuracy for classification (from the same pass when the
    labels' first tokens differ, else by label likelihood), token exact match for
    generation and next-token accuracy for language modelling.
    """
    by_likelihood = labels is not None and not labels.first_tokens_distinct
    generation = labels is None and task_type == "generation"
    nll_sums, token_counts, hits, order, prefixes = [], [], [], [], []
    for idx, chunk in _batches(examples):
        order += idx
        batch = collate(chunk)
        logits = answer_logits(adapter, batch).astype(mx.float32)
        nll = nn.losses.cross_entropy(logits, batch.targets) * batch.mask
        argmax = mx.argmax(logits, axis=-1)
        correct = (argmax == batch.targets) * batch.mask
        per_example_tokens = batch.mask.sum(axis=1)
        nll_sums.append(np.array(nll.sum(axis=1)))
        token_counts.append(np.array(per_example_tokens))
        if by_likelihood:
            predicted = _classify_by_likelihood(adapter, chunk, labels)
            gold = [labels.token_ids.index(e.answer) for e in chunk]
            hits.append(np.array([p == g for p, g in zip(predicted, gold)], dtype=float))
        elif labels is not None:
            first = logits[:, 0, mx.array(labels.first_tokens)]
            choice = mx.array(labels.first_tokens)[mx.argmax(first, axis=-1)]
            hits.append(np.array(choice == batch.targets[:, 0], dtype=float))
        elif task_type == "language_modeling":
            hits.append(np.array(correct.sum(axis=1)))  # correct tokens per example
        else:
            hits.append(np.array(correct.sum(axis=1) == per_example_tokens, dtype=float))
        if generation:
            prefixes += _greedy_prefixes(chunk, np.array(argmax))
    counts = np.concatenate(token_counts)
    loss, loss_se = ratio_mean_and_se(np.concatenate(nll_sums), counts)
    hit = np.concatenate(hits)
    if task_type == "language_modeling":
        metric, metric_se = ratio_mean_and_se(hit, counts)
        return Evaluation(loss, metric, len(examples), loss_se, metric_se)
    metric = float(hit.mean())
    in_order = np.empty(len(hit), dtype=bool)
    in_order[order] = hit > 0
    greedy = [()] * len(prefixes)
    for i, prefix in zip(order, prefixes):
        greedy[i] = prefix
    return Evaluation(
        loss,
        metric,
        len(examples),
        loss_se,
        proportion_se(metric, len(hit)),
        tuple(in_order),
        tuple(greedy),
    )


def _greedy_prefixes(
    chunk: Sequence[EncodedExample], predicted: np.ndarray
) -> list[tuple[int, ...]]:
    """Per example: its answer up to the first position whose arg-max (``predicted``,
    ``(batch, answer positions)``) is wrong, then that arg-max."""
    prefixes = []
    for row, example in enumerate(chunk):
        answer = example.answer
        wrong = np.flatnonzero(predicted[row, : len(answer)] != np.array(answer))
        j = int(wrong[0]) if wrong.size else len(answer)
        prefixes.append(tuple(answer[:j]) + ((int(predicted[row, j]),) if wrong.size else ()))
    return prefixes


def _known_outcome(prefix: Sequence[int], completion: str, tokenizer: Any, stop: set[int]):
    """Whether greedy decoding that starts with ``prefix`` matches ``completion``, or
    None when only decoding further can tell.

    ``normalize_answer`` strips, lower-cases and collapses spaces, so a text's normalised
    form is a prefix of any continuation's: once it is not a prefix of the reference's,
    no continuation matches. Two exceptions stay undecided: a character split across
    tokens (decoded as U+FFFD so far) and Greek capital sigma, whose lower case depends
    on what follows.
    """
    if prefix and prefix[-1] in stop:  # decoding stopped there
        return normalize_answer(tokenizer.decode(list(prefix[:-1]))) == normalize_answer(completion)
    text = tokenizer.decode(list(prefix))
    if "\ufffd" in text or "\u03a3" in text:
        return None
    return None if normalize_answer(completion).startswith(normalize_answer(text)) else False


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
    return _classify_by_likelihood(adapter, examples, labels)


def _classify_by_likelihood(
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


def greedy_decode(
    adapter: BaseAdapter, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_ids: set[int]
) -> list[list[int]]:
    """Greedy continuations of ``prompts`` (batched by equal prompt length, no padding)."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        by_length[len(prompt)].append(i)
    outputs: list[list[int]] = [[] for _ in prompts]
    for group in by_length.values():
        for start in range(0, len(group), EVAL_BATCH):
            idx = group[start : start + EVAL_BATCH]
            cache = adapter.make_cache(batch_size=len(idx))
            tokens = mx.array([list(prompts[i]) for i in idx])
            done = np.zeros(len(idx), dtype=bool)
            for _ in range(max_new_tokens):
                hidden = adapter(tokens, cache)
                next_tokens = mx.argmax(adapter.logits(hidden[:, -1]), axis=-1)
                values = next_tokens.tolist()
                for row, token in enumerate(values):
                    if not done[row]:
                        if token in stop_ids:
                            done[row] = True
                        else:
                            outputs[idx[row]].append(token)
                if done.all():
                    break
                tokens = next_tokens[:, None]
    return outputs


def score_test(
    adapter: BaseAdapter,
    task: Task,
    examples: Sequence,
    encoded: Sequence[EncodedExample],
    tokenizer: Any,
    labels: LabelSet | None,
    *,
    accuracy: bool = True,
) -> dict[str, float]:
    """Every test metric of a trial, with standard errors.

    Args:
        adapter: The trained adapter (or the untuned model, for the zero-shot baseline).
        task: The task (its type decides how accuracy is scored).
        examples: The test ``Example`` objects.
        encoded: The same examples tokenised.
        tokenizer: Decodes generated answers.
        labels: The classification label set, else None.
        accuracy: Also score accuracy. Off for free-form answers, where greedy decoding
            is the costly part and exact match carries no signal.

    Returns:
        ``{"val_loss", "val_loss_se", "perplexity", "test_examples"}`` plus
        ``"accuracy"``, ``"accuracy_se"`` when scored. ``val_loss`` is in nats per answer
        token; ``perplexity`` is ``exp(val_loss)``.
    """
    forced = teacher_forced(adapter, encoded, task.task_type, labels)
    scores = {
        "val_loss": forced.loss,
        "val_loss_se": forced.loss_se,
        "perplexity": float(np.exp(min(forced.loss, 50.0))),
        "test_examples": len(encoded),
    }
    # Language modelling (next-token accuracy) and classification (the label chosen at
    # the answer position, or by label likelihood) are scored by the same pass.
    if task.task_type == "language_modeling" or labels is not None:
        return {**scores, "accuracy": forced.metric, "accuracy_se": forced.metric_se}
    if not accuracy:
        return scores
    # Greedy decoding reproduces the reference exactly when every teacher-forced arg-max
    # is right (and the answer was not cut short): those examples are hits already. Of
    # the others, only those whose known start may still normalise onto the reference
    # (case, punctuation, another tokenisation of the same text) are decoded.
    end = eos_id(tokenizer)
    stop = set(getattr(tokenizer, "eos_token_ids", None) or [end])
    hits: list[bool | None] = [
        True
        if hit and e.answer[-1] == end
        else _known_outcome(prefix, example.completion, tokenizer, stop)
        for hit, e, prefix, example in zip(forced.hits, encoded, forced.greedy_prefixes, examples)
    ]
    rest = [i for i, hit in enumerate(hits) if hit is None]
    if rest:
        longest = max(len(encoded[i].answer) for i in rest)
        decoded = greedy_decode(adapter, [encoded[i].prompt for i in rest], longest + 2, stop)
        for i, tokens in zip(rest, decoded):
            hits[i] = normalize_answer(tokenizer.decode(tokens)) == normalize_answer(
                examples[i].completion
            )
    value = float(np.mean(hits))
    return {**scores, "accuracy": value, "accuracy_se": proportion_se(value, len(hits))}
