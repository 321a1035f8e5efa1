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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..peft import BaseAdapter
from ..tasks import Task, normalize_answer
from .batching import EVAL_BATCH, EncodedExample, collate, eos_id
from .frozen import FrozenBlocks
from .labels import LabelSet, classify_by_likelihood
from .loss import answer_logits


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
    frozen: FrozenBlocks | None = None,
) -> Evaluation:
    """Loss and metric from one forward pass per batch (learning curves, and the test
    split's loss).

    The metric is label accuracy for classification (from the same pass when the
    labels' first tokens differ, else by label likelihood), token exact match for
    generation and next-token accuracy for language modelling. ``frozen``: the
    examples' states after the adapter's frozen lower blocks, where the pass starts.
    """
    by_likelihood = labels is not None and not labels.first_tokens_distinct
    generation = labels is None and task_type == "generation"
    nll_sums, token_counts, hits, order, prefixes = [], [], [], [], []
    for idx, chunk in _batches(examples):
        order += idx
        batch = collate(chunk)
        if frozen is None:
            logits = answer_logits(adapter, batch)
        else:
            below = frozen.batch(idx, batch.tokens.shape[1])
            logits = answer_logits(adapter, batch, below, frozen.blocks)
        logits = logits.astype(mx.float32)
        nll = nn.losses.cross_entropy(logits, batch.targets) * batch.mask
        argmax = mx.argmax(logits, axis=-1)
        correct = (argmax == batch.targets) * batch.mask
        per_example_tokens = batch.mask.sum(axis=1)
        nll_sums.append(np.array(nll.sum(axis=1)))
        token_counts.append(np.array(per_example_tokens))
        if by_likelihood:
            predicted = classify_by_likelihood(adapter, chunk, labels)
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


def greedy_decode(
    adapter: BaseAdapter,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: set[int],
    settled: Callable[[int, list[int]], bool] | None = None,
) -> list[list[int]]:
    """Greedy continuations of ``prompts`` (batched by equal prompt length, no padding).

    ``settled(i, tokens)``, when given, is asked after each new token of prompt ``i``;
    True stops decoding it there.
    """
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
                            done[row] = settled is not None and settled(idx[row], outputs[idx[row]])
                if done.all():
                    break
                tokens = next_tokens[:, None]
    return outputs


def _generation_hits(
    adapter: BaseAdapter,
    examples: Sequence,
    encoded: Sequence[EncodedExample],
    forced: Evaluation,
    tokenizer: Any,
) -> list[bool]:
    """Per example: whether greedy decoding reproduces its answer after normalisation.

    Greedy decoding reproduces the reference exactly when every teacher-forced arg-max
    is right (and the answer was not cut short): those examples are hits already. Of the
    others, only those whose known start may still normalise onto the reference (case,
    punctuation, another tokenisation of the same text) are decoded, from that start on,
    and each only until its outcome is known; at most the longest answer + 2 tokens.
    """
    end = eos_id(tokenizer)
    stop = set(getattr(tokenizer, "eos_token_ids", None) or [end])
    prefixes = forced.greedy_prefixes
    hits: list[bool | None] = [
        True
        if hit and e.answer[-1] == end
        else _known_outcome(prefix, example.completion, tokenizer, stop)
        for hit, e, prefix, example in zip(forced.hits, encoded, prefixes, examples)
    ]
    rest = [i for i, hit in enumerate(hits) if hit is None]
    if rest:
        limit = max(len(encoded[i].answer) for i in rest) + 2

        def settled(k: int, tokens: list[int]) -> bool:
            so_far = prefixes[rest[k]] + tuple(tokens)
            outcome = _known_outcome(so_far, examples[rest[k]].completion, tokenizer, stop)
            return outcome is not None or len(so_far) >= limit

        starts = [tuple(encoded[i].prompt) + prefixes[i] for i in rest]
        decoded = greedy_decode(adapter, starts, limit, stop, settled)
        for i, tokens in zip(rest, decoded):
            text = tokenizer.decode(list(prefixes[i]) + tokens)
            hits[i] = normalize_answer(text) == normalize_answer(examples[i].completion)
    return hits


def score_test(
    adapter: BaseAdapter,
    task: Task,
    examples: Sequence,
    encoded: Sequence[EncodedExample],
    tokenizer: Any,
    labels: LabelSet | None,
    *,
    accuracy: bool = True,
    frozen: FrozenBlocks | None = None,
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
        frozen: The test examples' states after the adapter's frozen lower blocks
            (:meth:`PreparedTask.eval_states`), where the teacher-forced pass starts.

    Returns:
        ``{"val_loss", "val_loss_se", "perplexity", "test_examples"}`` plus
        ``"accuracy"``, ``"accuracy_se"`` when scored. ``val_loss`` is in nats per answer
        token; ``perplexity`` is ``exp(val_loss)``.
    """
    forced = teacher_forced(adapter, encoded, task.task_type, labels, frozen)
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
    hits = _generation_hits(adapter, examples, encoded, forced, tokenizer)
    value = float(np.mean(hits))
    return {**scores, "accuracy": value, "accuracy_se": proportion_se(value, len(hits))}
