"""``Example`` and ``Task``: a dataset plus how to prompt and score it."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from ..errors import DataFormatError

TASK_TYPES = ("classification", "generation", "language_modeling")
QUALITY_OBJECTIVES = ("accuracy", "val_loss")
FREE_FORM_WORDS = 4  # answers of at least this many words (median) are free-form text
DOMAINS = ("sentiment", "multilingual", "numeric", "tabular", "algorithmic", "text", "other")
MIN_EXAMPLES = 6


@dataclass(frozen=True)
class Example:
    """One training example.

    Attributes:
        prompt: Text before the answer (empty for plain-text examples).
        completion: The answer the model learns to produce; the loss is on it alone.
        messages: For chat data, the conversation before the answer (role/content
            dicts); the prompt is then rendered with the tokenizer's chat template.
        origin: Where the example was read, ``"file:line"`` (empty for built-in data);
            warnings name it. Not part of equality or hashing.

    Example:
        >>> Example("Word: good, sentiment:", " positive").render_prompt(tokenizer=None)
        'Word: good, sentiment:'
    """

    prompt: str
    completion: str
    messages: tuple[tuple[tuple[str, str], ...], ...] | None = None
    origin: str = field(default="", compare=False, repr=False)

    def render_prompt(self, tokenizer: Any) -> str:
        """The prompt text, rendering chat messages with ``tokenizer``'s template."""
        if self.messages is None:
            return self.prompt
        messages = [dict(m) for m in self.messages]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class TaskSplits(NamedTuple):
    """Deterministic train/validation/test partition of a task's examples.

    Example:
        >>> train, validation, test = TaskSplits((), (), ())
        >>> len(train)
        0
    """

    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]


@dataclass(frozen=True)
class Task:
    """A dataset plus how to prompt and score it.

    Attributes:
        name: Identifier (built-in name such as ``"sentiment_strength@256"`` or a file stem).
        examples: All examples, in a fixed order.
        task_type: ``"classification"`` (answer from ``labels``, scored by label
            likelihood), ``"generation"`` (exact match after normalisation) or
            ``"language_modeling"`` (next-token accuracy on plain text).
        domain: One of :data:`DOMAINS`.
        labels: The answer set of a classification task, in sorted order.
        description: One line for listings.
        source: Where the data came from (a file path or a package).
        validation: Given validation examples (an mlx-lm ``valid.jsonl``, or a built-in
            task's fixed held-out set); empty: carved from ``examples`` by :meth:`splits`.
        test: Given test examples, likewise (``test.jsonl``).
        quality: The default quality objective, ``"accuracy"`` or ``"val_loss"``; None
            infers it (see :attr:`quality_objective`).

    Example:
        >>> task = Task("toy", tuple(Example(f"{i}?", " even" if i % 2 == 0 else " odd")
        ...                           for i in range(20)), "classification", "numeric")
        >>> len(task.splits().train), task.labels
        (16, (' even', ' odd'))
    """

    name: str
    examples: tuple[Example, ...]
    task_type: str
    domain: str = "other"
    labels: tuple[str, ...] = ()
    description: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    validation: tuple[Example, ...] = ()
    test: tuple[Example, ...] = ()
    quality: str | None = None

    def __post_init__(self) -> None:
        if self.quality is not None and self.quality not in QUALITY_OBJECTIVES:
            raise ValueError(f"quality={self.quality!r}; use one of {QUALITY_OBJECTIVES}.")
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"task_type={self.task_type!r}; use one of {TASK_TYPES}.")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain={self.domain!r}; use one of {DOMAINS}.")
        if len(self.examples) < MIN_EXAMPLES:
            raise DataFormatError(
                self.source or self.name,
                None,
                f"{len(self.examples)} examples; a task needs at least "
                f"{MIN_EXAMPLES} to split into train/validation/test.",
            )
        if self.task_type == "classification" and not self.labels:
            everything = self.examples + self.validation + self.test
            labels = tuple(sorted({e.completion for e in everything}))
            object.__setattr__(self, "labels", labels)

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the task's data: its type, examples and given
        validation and test sets (not its name or file location), so that a study can
        tell whether it is resumed on the same data.

        Example:
            >>> a = Task("a", (Example("1+1=", " 2"),) * 10, "generation")
            >>> b = Task("b", (Example("1+1=", " 2"),) * 10, "generation")
            >>> a.fingerprint == b.fingerprint, len(a.fingerprint)
            (True, 16)
        """
        parts = [
            [(e.prompt, e.completion, e.messages) for e in part]
            for part in (self.examples, self.validation, self.test)
        ]
        data = json.dumps([self.task_type, *parts], ensure_ascii=False)
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    @property
    def quality_objective(self) -> str:
        """The study's default quality objective for this task.

        ``accuracy`` where an answer can be checked exactly (classification, short
        generated answers); ``val_loss`` (held-out answer cross-entropy) for language
        modelling and for free-form answers, whose exact match stays near 0 whatever
        the fine-tune does: a median answer of :data:`FREE_FORM_WORDS` or more words.

        Example:
            >>> Task("t", tuple(Example("Q:", " a b c d e") for _ in range(8)),
            ...      "generation").quality_objective
            'val_loss'
        """
        if self.quality is not None:
            return self.quality
        if self.task_type == "language_modeling":
            return "val_loss"
        if self.task_type == "generation":
            words = sorted(len(e.completion.split()) for e in self.examples)
            return "val_loss" if words[len(words) // 2] >= FREE_FORM_WORDS else "accuracy"
        return "accuracy"

    def subsample(self, size: int, seed: int = 0) -> Task:
        """A task with ``size`` examples drawn without replacement, label-balanced (given
        validation and test examples are kept whole)."""
        if size >= len(self.examples):
            return self
        order = _stratified_order(self.examples, self.task_type, seed)
        keep = sorted(order[:size])
        return replace(
            self,
            name=f"{self.name.split('@')[0]}@{size}",
            examples=tuple(self.examples[i] for i in keep),
        )

    def splits(self, seed: int = 0, validation: float = 0.1, test: float = 0.1) -> TaskSplits:
        """Deterministic, label-stratified train/validation/test splits.

        Given :attr:`validation` and :attr:`test` examples are used as they are; only the
        missing splits are carved from :attr:`examples`.

        Args:
            seed: The same seed always gives the same splits for the same data.
            validation: Fraction of examples for validation (at least one).
            test: Fraction of examples held out for the final score (at least one).
        """
        n = len(self.examples)
        n_val = 0 if self.validation else max(1, round(n * validation))
        n_test = 0 if self.test else max(1, round(n * test))
        order = _stratified_order(self.examples, self.task_type, seed)
        # The stratified order interleaves labels, so every prefix is label-balanced.
        test_idx = sorted(order[:n_test])
        val_idx = sorted(order[n_test : n_test + n_val])
        train_idx = sorted(order[n_test + n_val :])
        pick = self.examples.__getitem__
        return TaskSplits(
            tuple(map(pick, train_idx)),
            self.validation or tuple(map(pick, val_idx)),
            self.test or tuple(map(pick, test_idx)),
        )


def _stratified_order(examples: tuple[Example, ...], task_type: str, seed: int) -> list[int]:
    """Indices shuffled within each label, then interleaved across labels."""
    rng = np.random.default_rng(seed)
    if task_type != "classification":
        return rng.permutation(len(examples)).tolist()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        groups[example.completion].append(i)
    # Interleave by each example's relative position within its label group, so the
    # label mix of any prefix matches the whole dataset.
    keyed = []
    for label in sorted(groups):
        idx = rng.permutation(groups[label])
        keyed += [((rank + rng.random()) / len(idx), int(i)) for rank, i in enumerate(idx)]
    return [i for _, i in sorted(keyed)]


_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Normalisation for exact match: case, surrounding space/punctuation, inner spaces.

    Example:
        >>> normalize_answer("  Forty-Two. ")
        'forty-two'
    """
    return _SPACES.sub(" ", text.strip().lower()).strip(" .!?,;:\"'")
