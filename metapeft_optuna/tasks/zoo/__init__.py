"""The built-in task zoo: real labelled data from PyPI packages plus generated tasks.

Every task is deterministic (a fixed seed per task, data read in sorted order) and
:func:`build_builtin` gives its full pool. :func:`builtin_task` gives a sized variant:
``"sentiment_strength@256"`` is 256 *training* examples plus fixed held-out sets.

Held-out sets. A task whose pool holds at least :data:`HOLDOUT` + :data:`MIN_TRAIN`
distinct prompts sets aside, once and independently of any size, a test set of
:data:`HOLDOUT_TEST` (400: a standard error of at most 0.025 at accuracy 0.5) and a
validation set of :data:`HOLDOUT_VALIDATION` examples, drawn label-stratified with a
fixed seed from the distinct prompts. They come as ``Task.validation``/``Task.test``
in a shuffled, label-interleaved order, so any prefix is a fair sample too. The rest
of the distinct prompts is the training pool; ``name@size`` trains on a label-balanced
subsample of it (smaller sizes are prefixes of larger ones), so ``parity@64`` and
``parity@1024`` are scored on the same 400 test examples and nothing in training
shares a prompt with them.

Small pools. Where the training pool is smaller than the size asked for (every size of
iris or wine, whose pools are below 528; sizes above the training pool elsewhere, e.g.
the default 512 for breast_cancer), the variant is the label-balanced subsample of the
whole pool (all of it if the size is larger) with no given sets, so :meth:`Task.splits`
carves validation and test from it proportionally. :func:`standard_sizes` lists the
sizes that use the held-out sets where a task has them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import NamedTuple

import numpy as np

from ..task import Example, Task, _stratified_order
from . import algorithmic, chat, freeform, lexical, numbers, stdlib_docs, tabular

# A builder returns (prompt, completion) pairs, or Examples where it needs more (chat).
Builder = Callable[[np.random.Generator], Sequence[tuple[str, str] | Example]]
STANDARD_SIZES = (64, 256, 1024)
DEFAULT_SIZE = 512
HOLDOUT_TEST = 400
HOLDOUT_VALIDATION = 64
HOLDOUT = HOLDOUT_TEST + HOLDOUT_VALIDATION
MIN_TRAIN = STANDARD_SIZES[0]  # a held-out split must leave at least this many to train on
HOLDOUT_SEED = 7  # fixed: the held-out sets never change with the size or the run


@dataclass(frozen=True)
class BuiltinTask:
    """A registered built-in task: how to build it and what it is.

    Attributes:
        quality: The task's quality objective (``"accuracy"`` or ``"val_loss"``), or
            None to let :attr:`Task.quality_objective` infer it.

    Example:
        >>> BUILTIN_TASKS["parity"].domain, BUILTIN_TASKS["parity"].task_type
        ('algorithmic', 'classification')
    """

    name: str
    domain: str
    task_type: str
    build: Builder
    source: str
    quality: str | None = None

    @property
    def description(self) -> str:
        return (self.build.__doc__ or "").strip().splitlines()[0]


_STDLIB_DOCS = "Python standard library docstrings"
# Number words run to four words and more, but each has exactly one right spelling:
# exact match is the honest quality there, not the free-form answers' loss.
EXACT = "accuracy"
# Exact answers a 135M model does not reach at this budget: reverse_word and
# roman_numerals scored 0.000-0.007 in all 12 of the learnability bar's configurations
# (no signal to search on) while their answer loss spread from 2.3 to 8.3 nats per token
# with standard errors below 0.1 (docs/task-signal.md). They are scored by loss.
OUT_OF_REACH = "val_loss"
_REGISTRY = (
    BuiltinTask(
        "sentiment_strength",
        "sentiment",
        "classification",
        lexical.sentiment_strength,
        "vaderSentiment",
    ),
    BuiltinTask("language_id", "multilingual", "classification", lexical.language_id, "wordfreq"),
    BuiltinTask(
        "number_words_fr",
        "multilingual",
        "generation",
        numbers.number_words("fr"),
        "num2words",
        quality=EXACT,
    ),
    BuiltinTask(
        "number_words_es",
        "multilingual",
        "generation",
        numbers.number_words("es"),
        "num2words",
        quality=EXACT,
    ),
    BuiltinTask(
        "number_to_words",
        "numeric",
        "generation",
        numbers.number_words("en"),
        "num2words",
        quality=EXACT,
    ),
    BuiltinTask("words_to_number", "numeric", "generation", numbers.words_to_number, "num2words"),
    BuiltinTask(
        "ordinal_words", "numeric", "generation", numbers.ordinal_words, "num2words", quality=EXACT
    ),
    BuiltinTask(
        "roman_numerals",
        "numeric",
        "generation",
        numbers.roman_numerals,
        "generated",
        quality=OUT_OF_REACH,
    ),
    BuiltinTask("iris", "tabular", "classification", tabular.iris, "scikit-learn"),
    BuiltinTask("wine", "tabular", "classification", tabular.wine, "scikit-learn"),
    BuiltinTask(
        "breast_cancer", "tabular", "classification", tabular.breast_cancer, "scikit-learn"
    ),
    BuiltinTask("addition", "algorithmic", "generation", algorithmic.addition, "generated"),
    BuiltinTask(
        "reverse_word",
        "algorithmic",
        "generation",
        algorithmic.reverse_word,
        "generated from wordfreq",
        quality=OUT_OF_REACH,
    ),
    BuiltinTask("sort_digits", "algorithmic", "generation", algorithmic.sort_digits, "generated"),
    BuiltinTask("parity", "algorithmic", "classification", algorithmic.parity, "generated"),
    BuiltinTask(
        "compare_numbers", "algorithmic", "classification", algorithmic.compare_numbers, "generated"
    ),
    BuiltinTask(
        "count_vowels",
        "algorithmic",
        "classification",
        algorithmic.count_vowels,
        "generated from wordfreq",
    ),
    # Free-form, human-written answers: exact match stays near 0 for a small model, so
    # they are scored by held-out answer loss (language_name's answers are mostly one
    # or two words, but just as unguessable).
    BuiltinTask(
        "docstring_summary",
        "text",
        "generation",
        stdlib_docs.docstring_summary,
        _STDLIB_DOCS,
        quality="val_loss",
    ),
    BuiltinTask(
        "unicode_name",
        "text",
        "generation",
        freeform.unicode_name,
        "Python standard library unicodedata (Unicode 3.2)",
        quality="val_loss",
    ),
    BuiltinTask(
        "emoji_name", "text", "generation", freeform.emoji_name, "emoji", quality="val_loss"
    ),
    BuiltinTask(
        "language_name",
        "multilingual",
        "generation",
        freeform.language_name,
        "pycountry (ISO 639-3)",
        quality="val_loss",
    ),
    BuiltinTask(
        "chat_python_docs",
        "text",
        "generation",
        chat.chat_python_docs,
        _STDLIB_DOCS,
        quality="val_loss",
    ),
    BuiltinTask(
        "chat_subdivision_country",
        "other",
        "generation",
        chat.chat_subdivision_country,
        "pycountry (ISO 3166-2)",
        quality="accuracy",
    ),
)
BUILTIN_TASKS: dict[str, BuiltinTask] = {entry.name: entry for entry in _REGISTRY}


@cache
def build_builtin(name: str) -> Task:
    """The full (unsubsampled) built-in task ``name``, its whole pool; cached, deterministic."""
    entry = BUILTIN_TASKS[name]
    seed = sum(map(ord, name))  # a fixed, name-derived seed
    rows = entry.build(np.random.default_rng(seed))
    examples = tuple(row if isinstance(row, Example) else Example(*row) for row in rows)
    return Task(
        name,
        examples,
        entry.task_type,
        entry.domain,
        description=entry.description,
        source=entry.source,
        quality=entry.quality,
    )


class HeldOut(NamedTuple):
    """A built-in task's fixed split: its training pool and held-out sets.

    Attributes:
        train: The full task restricted to the training pool (pool order).
        validation: :data:`HOLDOUT_VALIDATION` examples, in label-interleaved order.
        test: :data:`HOLDOUT_TEST` examples, in label-interleaved order.
    """

    train: Task
    validation: tuple[Example, ...]
    test: tuple[Example, ...]


@cache
def held_out(name: str) -> HeldOut | None:
    """The fixed held-out split of built-in task ``name``; None where its pool is too small.

    Example:
        >>> split = held_out("parity")
        >>> len(split.test), len(split.validation), held_out("iris")
        (400, 64, None)
    """
    pool = build_builtin(name)
    # One example per prompt (the first), so no training example repeats a held-out one:
    # generated tasks such as parity draw the same numbers several times.
    distinct: dict[tuple, Example] = {}
    for example in pool.examples:
        distinct.setdefault((example.prompt, example.messages), example)
    examples = tuple(distinct.values())
    if len(examples) < HOLDOUT + MIN_TRAIN:
        return None
    # The same label interleaving as Task.splits: every prefix of the order is
    # label-stratified, so the test and validation sets are too.
    order = _stratified_order(examples, pool.task_type, HOLDOUT_SEED)
    train = tuple(examples[i] for i in sorted(order[HOLDOUT:]))
    return HeldOut(
        replace(pool, examples=train),
        tuple(examples[i] for i in order[HOLDOUT_TEST:HOLDOUT]),
        tuple(examples[i] for i in order[:HOLDOUT_TEST]),
    )


def builtin_task(name: str, size: int | None = None) -> Task:
    """Built-in task ``name`` with ``size`` training examples (default :data:`DEFAULT_SIZE`,
    or the whole training pool where that is smaller, so the held-out sets stay).

    With a held-out split (see the module docstring) and ``size`` at most its training
    pool: a label-balanced subsample of the training pool, with the fixed held-out sets
    as ``validation``/``test``. Otherwise: the label-balanced subsample of the whole pool
    (or all of it), whose validation and test :meth:`Task.splits` carves.

    Args:
        name: A key of :data:`BUILTIN_TASKS`.
        size: Training examples; None for the default.

    Raises:
        ValueError: ``size`` is below 1.

    Example:
        >>> task = builtin_task("parity", 64)
        >>> task.name, len(task.examples), len(task.validation), len(task.test)
        ('parity@64', 64, 64, 400)
        >>> len(builtin_task("iris", 64).test)
        0
    """
    if size is not None and size < 1:
        raise ValueError(f"size={size}; a built-in task needs at least one example.")
    split = held_out(name)
    if size is None:
        size = DEFAULT_SIZE if split is None else min(DEFAULT_SIZE, len(split.train.examples))
    if split is not None and size <= len(split.train.examples):
        train = split.train.subsample(size)
        return replace(train, name=f"{name}@{size}", validation=split.validation, test=split.test)
    task = build_builtin(name)
    return task.subsample(size) if size < len(task.examples) else task


def standard_sizes(name: str) -> list[int]:
    """The sizes offered for ``name``.

    With a held-out split: the standard sizes its training pool can fill, plus the whole
    training pool (all scored on the same held-out sets). Without: the standard sizes
    below its pool, plus the whole pool.

    Example:
        >>> standard_sizes("iris")
        [64, 150]
    """
    split = held_out(name)
    if split is not None:
        n = len(split.train.examples)
        return sorted({s for s in STANDARD_SIZES if s <= n} | {n})
    full = len(build_builtin(name).examples)
    return sorted({s for s in STANDARD_SIZES if s < full} | {full})
