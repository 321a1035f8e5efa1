"""The built-in task zoo: real labelled data from PyPI packages plus generated tasks.

Every task is deterministic (a fixed seed per task) and comes in several sizes:
``"word_sentiment@256"`` is a label-balanced 256-example subsample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..task import Example, Task
from . import algorithmic, lexical, numbers, tabular

Builder = Callable[[np.random.Generator], list[tuple[str, str]]]
STANDARD_SIZES = (64, 256, 1024)
DEFAULT_SIZE = 512


@dataclass(frozen=True)
class BuiltinTask:
    """A registered built-in task: how to build it and what it is.

    Example:
        >>> BUILTIN_TASKS["parity"].domain, BUILTIN_TASKS["parity"].task_type
        ('algorithmic', 'classification')
    """

    name: str
    domain: str
    task_type: str
    build: Builder
    source: str

    @property
    def description(self) -> str:
        return (self.build.__doc__ or "").strip().splitlines()[0]


_ENTRIES = [
    ("word_sentiment", "sentiment", "classification", lexical.word_sentiment, "vaderSentiment"),
    (
        "sentiment_strength",
        "sentiment",
        "classification",
        lexical.sentiment_strength,
        "vaderSentiment",
    ),
    (
        "emoticon_sentiment",
        "sentiment",
        "classification",
        lexical.emoticon_sentiment,
        "vaderSentiment",
    ),
    ("language_id", "multilingual", "classification", lexical.language_id, "wordfreq"),
    ("number_words_fr", "multilingual", "generation", numbers.number_words("fr"), "num2words"),
    ("number_words_es", "multilingual", "generation", numbers.number_words("es"), "num2words"),
    ("number_to_words", "numeric", "generation", numbers.number_words("en"), "num2words"),
    ("words_to_number", "numeric", "generation", numbers.words_to_number, "num2words"),
    ("ordinal_words", "numeric", "generation", numbers.ordinal_words, "num2words"),
    ("roman_numerals", "numeric", "generation", numbers.roman_numerals, "generated"),
    ("iris", "tabular", "classification", tabular.iris, "scikit-learn"),
    ("wine", "tabular", "classification", tabular.wine, "scikit-learn"),
    ("breast_cancer", "tabular", "classification", tabular.breast_cancer, "scikit-learn"),
    ("diabetes_level", "tabular", "classification", tabular.diabetes_level, "scikit-learn"),
    ("addition", "algorithmic", "generation", algorithmic.addition, "generated"),
    (
        "reverse_word",
        "algorithmic",
        "generation",
        algorithmic.reverse_word,
        "generated from wordfreq",
    ),
    ("sort_digits", "algorithmic", "generation", algorithmic.sort_digits, "generated"),
    ("parity", "algorithmic", "classification", algorithmic.parity, "generated"),
    ("compare_numbers", "algorithmic", "classification", algorithmic.compare_numbers, "generated"),
    (
        "count_vowels",
        "algorithmic",
        "classification",
        algorithmic.count_vowels,
        "generated from wordfreq",
    ),
]
BUILTIN_TASKS: dict[str, BuiltinTask] = {
    name: BuiltinTask(name, domain, task_type, build, source)
    for name, domain, task_type, build, source in _ENTRIES
}


@cache
def build_builtin(name: str) -> Task:
    """The full (unsubsampled) built-in task ``name``; cached, deterministic."""
    entry = BUILTIN_TASKS[name]
    seed = sum(map(ord, name))  # a fixed, name-derived seed
    pairs = entry.build(np.random.default_rng(seed))
    examples = tuple(Example(prompt, completion) for prompt, completion in pairs)
    return Task(
        name,
        examples,
        entry.task_type,
        entry.domain,
        description=entry.description,
        source=entry.source,
    )


def standard_sizes(name: str) -> list[int]:
    """The sizes offered for ``name``: the standard ones it can fill, plus its full size."""
    full = len(build_builtin(name).examples)
    return sorted({s for s in STANDARD_SIZES if s < full} | {full})
