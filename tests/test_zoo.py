"""The zoo's fixed held-out sets, its small-pool fallback and its free-form and chat tasks."""

from __future__ import annotations

from collections import Counter

from metapeft_optuna.tasks import Example
from metapeft_optuna.tasks.zoo import (
    BUILTIN_TASKS,
    DEFAULT_SIZE,
    HOLDOUT,
    HOLDOUT_TEST,
    HOLDOUT_VALIDATION,
    MIN_TRAIN,
    build_builtin,
    builtin_task,
    held_out,
    standard_sizes,
)

import numpy as np
import pytest

# name: (domain, quality objective, at least this many examples in the pool)
NEW_TASKS = {
    "docstring_summary": ("text", "val_loss", 900),
    "unicode_name": ("text", "val_loss", 2000),
    "emoji_name": ("text", "val_loss", 3000),
    "language_name": ("multilingual", "val_loss", 7000),
    "chat_python_docs": ("text", "val_loss", 1000),
    "chat_subdivision_country": ("other", "accuracy", 4000),
}
CHAT_TASKS = ("chat_python_docs", "chat_subdivision_country")


def _key(example):
    return example.prompt, example.messages


def test_held_out_sets_are_fixed_disjoint_and_the_same_at_every_size():
    small, large = builtin_task("parity", 64), builtin_task("parity", 256)
    assert (small.name, len(small.examples)) == ("parity@64", 64)
    assert (large.name, len(large.examples)) == ("parity@256", 256)
    for task in (small, large):
        assert (len(task.test), len(task.validation)) == (HOLDOUT_TEST, HOLDOUT_VALIDATION)
    assert small.test == large.test and small.validation == large.validation
    held = [_key(e) for e in small.test + small.validation]
    assert len(set(held)) == HOLDOUT  # distinct prompts, test and validation disjoint
    assert not set(held) & {_key(e) for e in large.examples}
    assert set(small.examples) <= set(large.examples)  # smaller sizes nest in larger ones
    # The given sets are used as they are; training is every example of the variant.
    train, validation, test = large.splits(seed=3)
    assert (train, validation, test) == (large.examples, large.validation, large.test)
    assert builtin_task("parity", 64) == small  # deterministic


@pytest.mark.parametrize("name", ["sentiment_strength", "count_vowels", "language_id"])
def test_held_out_sets_are_label_stratified(name):
    split = held_out(name)
    everything = split.train.examples + split.validation + split.test
    pool = Counter(e.completion for e in everything)
    # Within 2 of the pool's share for every label (a random draw of 400 strays by ~10),
    # also for a prefix, as training scores prefixes of the held-out sets.
    for held in (split.test, split.test[:100], split.validation):
        counts = Counter(e.completion for e in held)
        for label, n in pool.items():
            assert abs(counts[label] - len(held) * n / len(everything)) <= 2, label
    train = Counter(e.completion for e in builtin_task(name, 256).examples)
    for label, n in pool.items():
        assert abs(train[label] - 256 * n / len(everything)) <= 2


def test_small_pools_fall_back_to_proportional_splits():
    assert held_out("iris") is None and standard_sizes("iris") == [64, 150]
    iris = builtin_task("iris", 64)
    assert (iris.name, len(iris.examples), iris.validation, iris.test) == ("iris@64", 64, (), ())
    assert [len(s) for s in iris.splits()] == [52, 6, 6]
    assert builtin_task("iris") == build_builtin("iris")  # the default size exceeds the pool
    # breast_cancer holds out 464 of its 569 examples: sizes above the 105 left fall back.
    assert standard_sizes("breast_cancer") == [64, 105]
    assert len(builtin_task("breast_cancer", 105).test) == HOLDOUT_TEST
    # The default size keeps the held-out sets: the whole training pool, not 512.
    default = builtin_task("breast_cancer")
    assert (len(default.examples), len(default.test)) == (105, HOLDOUT_TEST)
    assert len(builtin_task("breast_cancer", DEFAULT_SIZE).test) == 0  # asked for: falls back
    assert builtin_task("parity", 4000) == build_builtin("parity")  # above the training pool
    with pytest.raises(ValueError, match="size=0"):
        builtin_task("parity", 0)


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_standard_sizes_fit_the_training_pool(name):
    split = held_out(name)
    sizes = standard_sizes(name)
    pool = len(build_builtin(name).examples)
    if split is None:
        distinct = {_key(e) for e in build_builtin(name).examples}
        assert len(distinct) < HOLDOUT + MIN_TRAIN and sizes[-1] == pool
        return
    assert sizes[-1] == len(split.train.examples) <= pool - HOLDOUT
    task = builtin_task(name, sizes[-1])
    assert len(task.examples) == sizes[-1] and task.test == split.test


@pytest.mark.parametrize("name", sorted(NEW_TASKS))
def test_new_tasks_are_deterministic_free_form_or_chat(name, tiny):
    domain, quality, min_pool = NEW_TASKS[name]
    entry = BUILTIN_TASKS[name]
    task = build_builtin(name)
    assert (task.domain, task.task_type, task.quality_objective) == (domain, "generation", quality)
    assert entry.description and entry.source
    assert len(task.examples) >= min_pool
    assert len({_key(e) for e in task.examples}) == len(task.examples)  # no repeated prompt
    # Built from sorted data alone: another generator gives the very same examples.
    rows = entry.build(np.random.default_rng(12345))
    assert [r if isinstance(r, Example) else Example(*r) for r in rows] == list(task.examples)
    assert all(e.completion.strip() for e in task.examples)
    held = builtin_task(name, 256)
    assert (len(held.examples), len(held.test)) == (256, HOLDOUT_TEST)
    if name in CHAT_TASKS:
        example = held.test[0]
        assert example.prompt == "" and not example.completion.startswith(" ")
        assert [dict(m)["role"] for m in example.messages] == ["system", "user"]
        rendered = example.render_prompt(tiny.tokenizer)
        question = dict(example.messages[1])["content"]
        assert question in rendered and rendered.endswith("<|im_start|>assistant\n")
    else:
        assert all(e.messages is None and e.completion.startswith(" ") for e in task.examples)


def test_free_form_answers_are_multi_word():
    # Median answer lengths (in words): quality is val_loss either way, set explicitly.
    medians = {}
    for name in ("docstring_summary", "unicode_name", "emoji_name", "chat_python_docs"):
        words = sorted(len(e.completion.split()) for e in build_builtin(name).examples)
        medians[name] = words[len(words) // 2]
    assert min(medians.values()) >= 4, medians


def test_docstring_summaries_are_one_sentence_from_a_signature():
    task = build_builtin("docstring_summary")
    by_name = {e.prompt.split("(")[0]: e for e in task.examples}
    assert by_name["math.atan2"].prompt == "math.atan2(y, x, /)\nSummary:"
    assert by_name["hmac.new"].prompt == "hmac.new(key, msg=None, digestmod='')\nSummary:"
    # Long signatures drop their defaults.
    assert by_name["json.dumps"].prompt.startswith("json.dumps(obj, *, skipkeys, ensure_ascii,")
    assert all(e.prompt.endswith(")\nSummary:") for e in task.examples)
    assert all(e.completion.endswith(".") and "0x" not in e.prompt for e in task.examples)
    assert len({e.completion for e in task.examples}) == len(task.examples)  # deduplicated
    assert not any(name.split(".")[-1].startswith("_") for name in by_name)
