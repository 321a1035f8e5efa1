"""The trial runner: fine_tune, the search space, PEFTObjective with Optuna samplers."""

from __future__ import annotations

import json
import math

from metapeft_optuna import ConfigError, TrialFailedError, schema
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import AdapterFactory, BaseAdapter
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training.batching import (
    ANSWER_QUANTUM,
    LENGTH_QUANTUM,
    EncodedExample,
    collate,
    encode_task_examples,
    iterate_batches,
)
from metapeft_optuna.training.evaluation import teacher_forced
from metapeft_optuna.training.labels import LabelSet, classify, label_log_likelihoods
from metapeft_optuna.training.loss import answer_logits
from metapeft_optuna.training.objective import PEFTObjective
from metapeft_optuna.training.results import TrainingBudget
from metapeft_optuna.training.search_space import ParamSpec, PEFTSearchSpace, default_specs
from metapeft_optuna.training.trainer import fine_tune

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import optuna
import pytest
from conftest import needs_torch
from optuna.distributions import FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.WARNING)
BUDGET = TrainingBudget(curve_points=2, eval_examples=12, curve_examples=8)
LORA = {"learning_rate": 1e-2, "steps": 6, "batch_size": 8, "rank": 4}


def test_fine_tune_reports_three_objectives_and_a_curve(tiny, tmp_path):
    result = fine_tune(tiny, "parity@64", "lora", LORA, BUDGET, output_dir=tmp_path / "a")
    assert 0.0 <= result.accuracy <= 1.0
    assert result.peak_memory_mb > 0 and result.train_seconds > 0 and result.eval_seconds > 0
    assert result.trainable_parameters == 1792
    assert [p.step for p in result.learning_curve] == [3, 6]
    assert all(math.isfinite(p.val_loss) for p in result.learning_curve)
    assert (tmp_path / "a" / "adapters.safetensors").is_file()
    assert result.adapter_path == str(tmp_path / "a")
    assert json.loads(json.dumps(result.to_dict()))["method"] == "lora"
    # The shared model is left without adapter layers.
    assert not any("LoRA" in type(m).__name__ for _, m in tiny.model.named_modules())


def test_fine_tune_is_deterministic_under_a_seed(tiny):
    first = fine_tune(tiny, "parity@64", "lora", {**LORA, "dropout": 0.1}, BUDGET)
    second = fine_tune(tiny, "parity@64", "lora", {**LORA, "dropout": 0.1}, BUDGET)
    assert first.accuracy == second.accuracy

    def learned(result):  # what training computed (timings and memory are measurements)
        return [(p.step, p.train_loss, p.val_loss, p.val_metric) for p in result.learning_curve]

    assert learned(first) == learned(second)


@pytest.mark.parametrize(
    "method, config",
    [
        ("lora", LORA),
        (
            "adalora",
            {"learning_rate": 1e-2, "steps": 6, "batch_size": 8, "init_r": 4, "target_r": 2},
        ),
    ],
)
def test_the_compiled_step_trains_like_the_uncompiled_one(tiny, monkeypatch, method, config):
    """``METAPEFT_COMPILE`` switches compilation (the suite trains the tiny model
    uncompiled, tests/conftest.py); both paths compute the same training."""
    compiled_steps, compile = [], mx.compile
    monkeypatch.setattr(mx, "compile", lambda f, **kw: compiled_steps.append(f) or compile(f, **kw))

    def curve(setting):
        monkeypatch.setenv("METAPEFT_COMPILE", setting)
        result = fine_tune(tiny, "parity@64", method, config, BUDGET)
        return [(p.train_loss, p.val_loss) for p in result.learning_curve], result.accuracy

    (compiled, accuracy), (uncompiled, same_accuracy) = curve("1"), curve("0")
    assert np.allclose(compiled, uncompiled, rtol=1e-4) and accuracy == same_accuracy
    assert len(compiled_steps) == 1  # the first run only


@pytest.mark.parametrize(
    "method, config",
    [
        ("lora", {"rank": 4, "dropout": 0.1}),
        ("dora", {"rank": 4}),
        ("adalora", {"init_r": 4, "target_r": 2}),
    ],
)
def test_reusing_frozen_lower_blocks_trains_the_same(tiny, monkeypatch, method, config):
    """The last block adapted: the first is computed once per example (FrozenBlocks),
    and training follows the same path as recomputing it every step."""
    hyperparameters = {"learning_rate": 1e-2, "batch_size": 8, "steps": 12, "num_layers": 1}
    hyperparameters.update(config)

    def curve():
        result = fine_tune(tiny, "parity@64", method, hyperparameters, BUDGET)
        return [(p.train_loss, p.val_loss) for p in result.learning_curve], result.accuracy

    reused = curve()
    monkeypatch.setattr(BaseAdapter, "frozen_blocks", property(lambda self: 0))
    recomputed = curve()
    assert np.allclose(reused[0], recomputed[0], rtol=1e-4), (reused, recomputed)
    assert reused[1] == recomputed[1]


def test_evaluation_starts_from_frozen_block_states_kept_for_the_study(tiny):
    """Validation and test states after the frozen blocks are computed once per study
    (in host memory) and give the same scores as the full forward."""
    from metapeft_optuna.training import PreparedTask

    prepared = PreparedTask.prepare(load_task("addition@64"), tiny.tokenizer, BUDGET)
    lora = AdapterFactory.create_adapter("lora", tiny.model, {"rank": 2, "num_layers": 1})
    try:
        states = prepared.eval_states(lora, "validation")
        assert states.blocks == 1 and prepared.eval_states(lora, "validation") is states
        reused = teacher_forced(lora, prepared.validation, "generation", None, states)
        full = teacher_forced(lora, prepared.validation, "generation", None)
        assert reused.loss == pytest.approx(full.loss, rel=1e-5)
        assert reused.hits == full.hits and reused.greedy_prefixes == full.greedy_prefixes
        assert states._hidden and all(isinstance(h, np.ndarray) for h in states._hidden.values())
    finally:
        lora.detach()
    prompt = AdapterFactory.create_adapter("prompt_tuning", tiny.model, {"num_virtual_tokens": 2})
    try:
        assert prepared.eval_states(prompt, "test") is None  # it changes every block's input
    finally:
        prompt.detach()


@pytest.mark.parametrize("task", ["addition@64", "count_vowels@64"])
def test_generation_and_likelihood_scored_tasks(tiny, task):
    result = fine_tune(
        tiny,
        task,
        "prefix_tuning",
        {"learning_rate": 1e-2, "steps": 4, "batch_size": 8, "num_virtual_tokens": 4},
        BUDGET,
    )
    assert 0.0 <= result.accuracy <= 1.0 and len(result.learning_curve) == 2


def test_virtual_token_trials_record_that_their_tokens_were_shared(tiny):
    """Their time and memory are measured with the virtual tokens computed once per
    batch; the meta-dataset tells these trials from earlier ones by this mark."""
    hp = {"learning_rate": 1e-2, "steps": 2, "batch_size": 8, "num_virtual_tokens": 4}
    assert fine_tune(tiny, "parity@64", "p_tuning", hp, BUDGET).extra == {
        "virtual_tokens_shared": 4
    }
    assert "virtual_tokens_shared" not in fine_tune(tiny, "parity@64", "lora", LORA, BUDGET).extra


def test_language_modeling_task(tiny, tmp_path):
    path = tmp_path / "lm.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"count {i} {i + 1} {i + 2}"}) + "\n" for i in range(40))
    )
    result = fine_tune(tiny, load_task(path), "lora", LORA, BUDGET)
    assert 0.0 <= result.accuracy <= 1.0


def test_classification_scoring_paths_agree_when_first_tokens_differ(tiny):
    model, tokenizer, _ = tiny
    task = load_task("sentiment_strength@64")
    labels = LabelSet.from_task(task, tokenizer)
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 2})
    try:
        examples = encode_task_examples(task.examples[:16], tokenizer)
        with_byte_labels = classify(adapter, examples, labels)  # byte labels share " "
        assert not labels.first_tokens_distinct
        forward = teacher_forced(adapter, examples, "classification", labels)
        gold = [labels.labels.index(e.completion) for e in task.examples[:16]]
        assert forward.metric == np.mean(np.array(with_byte_labels) == np.array(gold))
    finally:
        adapter.detach()


@pytest.mark.parametrize("method", ["lora", "prompt_tuning", "prefix_tuning", "p_tuning"])
def test_label_likelihoods_from_a_shared_prompt_cache_equal_full_forwards(tiny, method):
    """Each prompt runs once and every label continues from a copy of its KV cache; the
    log-likelihoods equal one full forward pass per (example, label), up to the labels'
    common first tokens, which every label shares."""
    model, tokenizer, _ = tiny
    task = load_task("count_vowels@64")
    labels = LabelSet.from_task(task, tokenizer)
    assert not labels.first_tokens_distinct  # byte tokens: every label starts with " "
    config = {"rank": 2} if method == "lora" else {"num_virtual_tokens": 3}
    adapter = AdapterFactory.create_adapter(method, model, config)
    try:
        adapter.eval()
        examples = encode_task_examples(task.examples[:12], tokenizer)
        shared = label_log_likelihoods(adapter, examples, labels)
        full = np.zeros_like(shared)
        for i, e in enumerate(examples):
            for j, ids in enumerate(labels.token_ids):
                batch = collate([EncodedExample(e.prompt, ids)])
                logits = answer_logits(adapter, batch).astype(mx.float32)
                full[i, j] = -(nn.losses.cross_entropy(logits, batch.targets) * batch.mask).sum()
        common = full - shared  # the shared " ": alike across labels
        assert np.allclose(common, common[:, :1], atol=1e-4)
        assert (shared.argmax(axis=1) == full.argmax(axis=1)).all()
    finally:
        adapter.detach()


def test_batches_are_bucketed_and_answer_only():
    _, tokenizer, _ = load_model("tiny")
    examples = encode_task_examples(load_task("addition@64").examples, tokenizer)
    batch = next(iterate_batches(examples, 8, seed=0))
    assert batch.tokens.shape[1] % LENGTH_QUANTUM == 0
    assert batch.positions.shape[1] % ANSWER_QUANTUM == 0
    lengths = batch.lengths.tolist()
    assert max(lengths) - min(lengths) <= 2  # sorted by length before cutting
    single = collate(examples[:1])
    n = len(examples[0].answer)
    assert single.mask.sum().item() == n
    assert single.positions[0, :n].tolist() == list(
        range(len(examples[0].prompt) - 1, len(examples[0].prompt) - 1 + n)
    )


@pytest.mark.parametrize(
    "hyperparameters, message",
    [
        ({"steps": 4, "batch_size": 8}, "lack ['learning_rate']"),
        ({**LORA, "learning_rate": -1}, "learning_rate=-1 must be a number > 0"),
        ({**LORA, "steps": 0}, "steps=0 must be an integer >= 1"),
    ],
)
def test_bad_training_hyperparameters(tiny, hyperparameters, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fine_tune(tiny, "parity@64", "lora", hyperparameters, BUDGET)


def nan_model():
    """The tiny model with a corrupted (NaN) final norm: every loss is NaN."""
    model, tokenizer, info = load_model("tiny")
    model.model.norm.weight = mx.full(model.model.norm.weight.shape, float("nan"))
    return model, tokenizer, info


def test_trial_failures_are_readable(tiny):
    with pytest.raises(TrialFailedError, match="the training loss became nan at step 1"):
        fine_tune(nan_model(), "parity@64", "lora", LORA, BUDGET)
    with pytest.raises(TrialFailedError, match="exceeded the ceiling of 0 MB"):
        fine_tune(
            tiny, "parity@64", "lora", LORA, TrainingBudget(memory_limit_mb=0.001, curve_points=1)
        )
    with pytest.raises(TrialFailedError, match="does not fit the model's context"):
        fine_tune(
            tiny,
            "parity@64",
            "prompt_tuning",
            {"learning_rate": 1e-2, "steps": 2, "batch_size": 4, "num_virtual_tokens": 600},
            BUDGET,
        )
    with pytest.raises(TrialFailedError, match="exceed the model's context of 512"):
        fine_tune(
            tiny,
            "parity@64",
            "prompt_tuning",
            {"learning_rate": 1e-2, "steps": 2, "batch_size": 4, "num_virtual_tokens": 500},
            BUDGET,
        )
    assert not any("Adapter" in type(m).__name__ for _, m in tiny.model.named_modules())


def _space(**ranges) -> PEFTSearchSpace:
    specs = []
    for spec in default_specs():
        if spec.name in ranges:
            spec = ParamSpec(spec.name, ranges[spec.name], spec.methods, spec.condition)
        specs.append(spec)
    return PEFTSearchSpace(methods=ranges.pop("methods", ("lora",)), specs=specs)


@pytest.mark.parametrize(
    "nan, space, budget, reason",
    [
        (True, _space(), BUDGET, "loss became nan"),
        (
            False,
            _space(
                methods=("prompt_tuning",), num_virtual_tokens=IntDistribution(600, 700, log=True)
            ),
            BUDGET,
            "does not fit the model's context",
        ),
        (
            False,
            _space(),
            TrainingBudget(memory_limit_mb=0.001, curve_points=1),
            "exceeded the ceiling",
        ),
    ],
    ids=["nan-loss", "too-many-virtual-tokens", "memory-ceiling"],
)
def test_failed_trials_keep_the_study_usable(tiny, nan, space, budget, reason):
    model = nan_model() if nan else tiny
    objective = PEFTObjective("parity@64", model=model, search_space=space, budget=budget)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    failed = study.trials[0]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert reason in failed.user_attrs[schema.TRIAL_FAIL_REASON]
    good_space = _space(methods=space.methods, steps=IntDistribution(2, 4, log=True))
    good = PEFTObjective("parity@64", model=tiny, search_space=good_space, budget=BUDGET)
    study.optimize(good, n_trials=1)
    assert study.trials[1].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.parametrize(
    "make_sampler",
    [
        lambda: optuna.samplers.TPESampler(seed=0),
        lambda: optuna.samplers.NSGAIISampler(seed=0),
        lambda: optuna.samplers.RandomSampler(seed=0),
        pytest.param(
            lambda: optuna.samplers.GPSampler(seed=0),
            marks=needs_torch,
        ),
    ],
    ids=["tpe", "nsga2", "random", "gp"],
)
def test_three_trial_study_with_builtin_samplers(tiny, make_sampler):
    sampler = make_sampler()
    space = PEFTSearchSpace(
        specs=[
            s if s.name != "steps" else ParamSpec("steps", IntDistribution(2, 6, step=2), s.methods)
            for s in default_specs()
        ]
    )
    objective = PEFTObjective("parity@64", model=tiny, search_space=space, budget=BUDGET)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=3)
    assert len(study.trials) == 3
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
        assert len(trial.values) == 3 and all(math.isfinite(v) for v in trial.values)
        assert trial.user_attrs[schema.TRIAL_CURVE]
        assert trial.user_attrs[schema.TRIAL_METHOD] == trial.params["method"]
        assert trial.user_attrs["task"] == "parity@64"
    attrs = study.user_attrs
    assert attrs[schema.STUDY_TASK]["characteristics"]["dataset_size"] == 64
    assert attrs[schema.STUDY_MODEL]["name"] == "tiny"


def test_single_objective_study_reports_and_can_prune(tiny):
    space = _space(steps=IntDistribution(4, 4))
    objective = PEFTObjective(
        "parity@64", model=tiny, search_space=space, budget=BUDGET, objectives=("accuracy",)
    )
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0)
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.intermediate_values == {2: trial.intermediate_values[2]}


def test_search_space_encoding_and_sampling():
    space = PEFTSearchSpace()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        params = space.sample(rng)
        seen.add(params["method"])
        assert space.contains(params)
        vector = space.encode(params)
        assert vector.shape == (space.dimension,) and vector.min() >= 0 and vector.max() <= 1
        assert vector[space.methods.index(params["method"])] == 1.0
    assert seen == set(space.methods)
    assert len(space.feature_names()) == space.dimension
    assert not space.contains({"method": "lora"})
    with pytest.raises(ConfigError):
        PEFTSearchSpace(methods=())


@pytest.mark.parametrize(
    "method", ["lora", "dora", "adalora", "prompt_tuning", "prefix_tuning", "p_tuning"]
)
def test_every_sampled_configuration_builds_an_adapter(method):
    space = PEFTSearchSpace()
    rng = np.random.default_rng(1)
    model, tokenizer, _ = load_model("tiny")
    for _ in range(10):
        _, hp = space.to_hyperparameters(
            space.sample(rng, method), num_layers=2, init_text="Parity:"
        )
        config = {k: v for k, v in hp.items() if k not in ("learning_rate", "steps", "batch_size")}
        if method == "adalora":
            config["total_step"] = hp["steps"]
        adapter = AdapterFactory.create_adapter(method, model, config, tokenizer=tokenizer)
        assert adapter.num_trainable_parameters > 0
        adapter.detach()


@pytest.mark.slow
def test_smollm2_four_trial_study_beats_zero_shot(smollm2):
    """4 real fine-tunes of SmolLM2-135M on language identification (7 languages; the
    untuned model scores 0.30 on the 400-example test set)."""
    space = PEFTSearchSpace(
        methods=("lora", "prompt_tuning", "prefix_tuning"),
        specs=[
            ParamSpec(s.name, FloatDistribution(1e-3, 3e-2, log=True), s.methods)
            if s.name == "learning_rate"
            else ParamSpec("steps", IntDistribution(20, 20), s.methods)
            if s.name == "steps"
            else s
            for s in default_specs()
        ],
    )
    objective = PEFTObjective(
        "language_id@256",
        model=smollm2,
        search_space=space,
        budget=TrainingBudget(curve_points=2, eval_examples=64),
    )
    study = optuna.create_study(
        directions=objective.directions, sampler=optuna.samplers.TPESampler(seed=1)
    )
    study.optimize(objective, n_trials=4)
    best = max(t.values[0] for t in study.trials if t.values)
    zero_shot = study.user_attrs[schema.STUDY_BASELINE]["accuracy"]
    assert best >= zero_shot + 0.2, (zero_shot, [(t.params, t.values) for t in study.trials])
    mx.clear_cache()
