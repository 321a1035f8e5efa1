"""Built-in tasks, deterministic splits and task characteristics."""

from __future__ import annotations

from collections import Counter

from metapeft_optuna import UnknownTaskError
from metapeft_optuna.tasks import (
    DOMAINS,
    Example,
    Task,
    TaskCharacteristics,
    list_tasks,
    load_task,
    normalize_answer,
)
from metapeft_optuna.tasks.zoo import BUILTIN_TASKS, standard_sizes

import numpy as np
import pytest


def test_zoo_is_a_real_distribution_of_tasks():
    assert len(BUILTIN_TASKS) >= 12
    assert len({t.domain for t in BUILTIN_TASKS.values()}) >= 4
    assert {t.task_type for t in BUILTIN_TASKS.values()} == {"classification", "generation"}
    for name in BUILTIN_TASKS:
        assert len(standard_sizes(name)) >= 2, name


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_every_builtin_task_loads_splits_and_has_characteristics(name, tiny):
    task = load_task(name)
    # Plain completions follow their prompt after a space; chat answers follow the
    # template's assistant header directly.
    assert task.examples and all(
        e.completion.startswith(" ") != bool(e.messages) for e in task.examples
    )
    splits = task.splits(seed=0)
    assert splits == load_task(name).splits(seed=0)  # deterministic
    sizes = [len(s) for s in splits]
    assert sum(sizes) == len(task.examples) + len(task.validation) + len(task.test)
    assert min(sizes) >= 1
    ids = [set(map(id, s)) for s in splits]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    chars = TaskCharacteristics.from_task(task, tiny.tokenizer)
    assert chars.dataset_size == len(task.examples)
    assert 0.0 <= chars.complexity_score <= 1.0
    assert chars.domain == BUILTIN_TASKS[name].domain
    vector = chars.to_vector()
    assert vector.shape == (len(TaskCharacteristics.feature_names()),)
    assert np.isfinite(vector).all()


def test_size_variants_are_label_balanced_subsamples():
    small = load_task("sentiment_strength@64")
    assert small.name == "sentiment_strength@64" and len(small.examples) == 64
    counts = Counter(e.completion for e in small.examples)
    full = Counter(e.completion for e in load_task("sentiment_strength", size=4636).examples)
    expected = 64 * full[" strong"] / sum(full.values())
    assert abs(counts[" strong"] - expected) <= 2
    assert load_task("sentiment_strength", size=64) == small
    assert len(list_tasks(with_sizes=True)) > len(list_tasks())


def test_splits_are_stratified_and_seeded():
    task = load_task("language_id@256")
    train, val, test = task.splits(seed=0)
    assert len(set(e.completion for e in test)) == 7  # every language in the test set
    # The seed picks the carved splits (a built-in task's held-out sets are fixed).
    iris = load_task("iris")
    assert not iris.test and iris.splits(seed=1) != iris.splits(seed=0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_task", "unknown task 'no_such_task'"),
        ("parity@abc", "the size after '@' must be a positive integer"),
        ("parity@0", "the size after '@' must be a positive integer"),
    ],
)
def test_unknown_tasks_are_clear_errors(spec, message):
    with pytest.raises(UnknownTaskError, match=message):
        load_task(spec)


def test_task_validation_messages():
    examples = tuple(Example(f"{i}", " a") for i in range(10))
    with pytest.raises(ValueError, match="task_type='regression'"):
        Task("t", examples, "regression")
    with pytest.raises(ValueError, match="domain='space'"):
        Task("t", examples, "classification", "space")
    with pytest.raises(ValueError, match="a task needs at least 6"):
        Task("t", examples[:3], "classification")
    assert "other" in DOMAINS


def test_characteristics_round_trip_and_seed_fields(tiny):
    chars = TaskCharacteristics.from_task(load_task("parity@64"), tiny.tokenizer)
    assert TaskCharacteristics.from_dict({**chars.to_dict(), "future": 1}) == chars
    seed_fields = [
        "dataset_size",
        "sequence_length",
        "vocabulary_size",
        "domain",
        "task_type",
        "complexity_score",
    ]
    assert list(chars.to_dict())[:6] == seed_fields
    assert chars.num_classes == 2 and chars.label_entropy > 0.9


def test_normalize_answer():
    assert normalize_answer(" Forty  Two. ") == "forty two"
    assert normalize_answer("MCM") == normalize_answer(" mcm")
