"""Objectives by name: any subset in any order, read right by the objective, the sampler,
the pruner and the experience reader; foreign studies refused; val_loss and baselines."""

from __future__ import annotations

import dataclasses
import math
import time

from metapeft_optuna import MetaPEFTPruner, MetaPEFTSampler, schema
from metapeft_optuna.cli.report import trial_line
from metapeft_optuna.errors import ConfigError
from metapeft_optuna.meta import ExperienceBuffer
from metapeft_optuna.tasks import Example, Task
from metapeft_optuna.training import PEFTObjective, PEFTSearchSpace, TrainingBudget

import optuna
import pytest

optuna.logging.set_verbosity(optuna.logging.WARNING)
BUDGET = TrainingBudget(curve_points=2, curve_examples=8, eval_examples=16)
LORA = PEFTSearchSpace(methods=("lora",))
ORDERS = [
    ("peak_memory_mb",),
    ("val_loss",),
    ("train_seconds", "accuracy"),
    ("val_loss", "peak_memory_mb", "train_seconds"),
    ("peak_memory_mb", "train_seconds", "accuracy", "val_loss"),
]


def _objective(tiny, objectives, space=LORA):
    return PEFTObjective(
        "parity@64", model=tiny, search_space=space, budget=BUDGET, objectives=objectives
    )


@pytest.mark.parametrize("objectives", ORDERS, ids=lambda o: ",".join(o))
def test_every_subset_reads_back_by_name(tiny, tmp_path, objectives):
    """The failing input: peak_memory_mb alone came back as accuracy 2.98."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    objective = _objective(tiny, objectives)
    study = optuna.create_study(
        storage=url,
        directions=objective.directions,
        sampler=MetaPEFTSampler(objective=objective, use_prior=False, seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0),
    )
    study.optimize(objective, n_trials=2)
    assert study.metric_names == list(objectives)
    trial = study.trials[0]
    measured = trial.user_attrs[schema.TRIAL_METRICS]
    assert {"val_loss", "val_loss_se", "accuracy", "accuracy_se"} <= set(measured)
    for name, value in zip(objectives, trial.values):
        if name in ("accuracy", "val_loss"):
            assert value == measured[name]
    experiences = ExperienceBuffer.from_storages([url]).complete()  # pruned: no final values
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(experiences) == len(complete) >= 1
    for experience in experiences:
        metrics = experience.performance_metrics
        assert 0.0 <= metrics["accuracy"] <= 1.0  # never a memory figure
        assert metrics["val_loss"] > 0
    for name in objectives:  # every objective value is experience under its own name
        stored = sorted(e.performance_metrics[name] for e in experiences)
        assert stored == sorted(t.values[objectives.index(name)] for t in complete)


def test_single_objective_reports_what_tracks_it(tiny):
    """A memory-only study reports peak memory to Optuna's pruners, not accuracy."""
    objective = _objective(tiny, ("peak_memory_mb",))
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    reported = list(trial.intermediate_values.values())
    assert reported == [p["peak_memory_mb"] for p in trial.user_attrs[schema.TRIAL_CURVE]]


@pytest.mark.parametrize(
    "objectives", [("val_loss", "train_seconds"), ("train_seconds", "accuracy")]
)
def test_pruner_reads_quality_and_time_by_name(objectives):
    """MetaPEFTPruner compares each objective in its own direction, wherever it sits."""
    study = optuna.create_study(
        directions=schema.directions(objectives),
        pruner=MetaPEFTPruner(use_prior=False, n_startup_trials=1),
    )
    study.set_metric_names(list(objectives))
    quality = schema.quality_objective(objectives)
    good = 0.2 if quality == "val_loss" else 0.9
    bad = 3.0 if quality == "val_loss" else 0.2
    key = schema.OBJECTIVE_SPECS[quality].curve_key
    distributions = {"steps": optuna.distributions.IntDistribution(20, 20)}
    for _ in range(3):
        done = study.ask(distributions)
        done.set_user_attr(
            schema.TRIAL_CURVE, [{"step": s, key: good, "train_seconds": s * 1.0} for s in (10, 20)]
        )
        values = {quality: good, "train_seconds": 20.0}
        study.tell(done, [values[n] for n in objectives])
    running = study.ask(distributions)
    # Worse and slower than every finished trial: dominated in every objective.
    running.set_user_attr(schema.TRIAL_CURVE, [{"step": 10, key: bad, "train_seconds": 12.0}])
    frozen = study._storage.get_trial(running._trial_id)
    mean, _ = study.pruner.predict_final_quality(study, frozen)
    assert mean == pytest.approx(-bad if quality == "val_loss" else bad)
    assert study.pruner.prune(study, frozen)
    # The same curve at the good level is kept.
    kept = study.ask(distributions)
    kept.set_user_attr(schema.TRIAL_CURVE, [{"step": 10, key: good, "train_seconds": 10.0}])
    assert not study.pruner.prune(study, study._storage.get_trial(kept._trial_id))


def test_a_foreign_study_is_refused(tiny):
    objective = _objective(tiny, ("accuracy",))
    study = optuna.create_study(directions=["minimize"])
    study.set_metric_names(["error"])
    with pytest.raises(ConfigError, match="another objective's"):
        study.optimize(objective, n_trials=1)
    study = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ConfigError, match="directions"):
        study.optimize(objective, n_trials=1)
    named = optuna.create_study(directions=["minimize"])
    named.set_metric_names(["val_loss"])
    with pytest.raises(ConfigError, match="not \\['accuracy'\\]"):
        named.optimize(_objective(tiny, ("accuracy",)), n_trials=1)


@pytest.mark.parametrize(
    "names", [[], ["accuracy", "accuracy"], ["loss"]], ids=["empty", "repeated", "unknown"]
)
def test_bad_objective_names_get_one_clear_line(names):
    with pytest.raises(ConfigError, match="choose one or more of"):
        schema.check_objectives(names)


def test_legacy_studies_without_names_map_onto_the_new_names():
    assert schema.objectives_of(None, ["maximize"]) == ("accuracy",)
    assert schema.objectives_of(None, ["maximize", "minimize", "minimize"]) == (
        schema.DEFAULT_OBJECTIVES
    )
    with pytest.raises(ConfigError, match="no metric names"):
        schema.objectives_of(None, ["minimize"])


def test_free_form_answers_default_to_val_loss_and_skip_decoding(tiny):
    words = ["alpha beta gamma delta", "one two three four five", "red green blue yellow"]
    task = Task(
        "free", tuple(Example(f"Q{i}:", " " + words[i % 3]) for i in range(40)), "generation"
    )
    objective = PEFTObjective(task, model=tiny, search_space=LORA, budget=BUDGET)
    assert objective.objectives == ("val_loss", "peak_memory_mb", "train_seconds")
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    measured = study.trials[0].user_attrs[schema.TRIAL_METRICS]
    assert "accuracy" not in measured  # greedy decoding skipped
    assert measured["perplexity"] == pytest.approx(math.exp(measured["val_loss"]))
    baseline = study.user_attrs[schema.STUDY_BASELINE]
    assert baseline["val_loss"] > 0 and baseline["val_loss_se"] > 0
    assert baseline["test_examples"] == len(objective.prepared.test)


def test_the_zero_shot_baseline_is_measured_once(tiny):
    objective = _objective(tiny, None)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=2)
    baseline = study.user_attrs[schema.STUDY_BASELINE]
    assert 0 <= baseline["accuracy"] <= 1
    assert baseline["accuracy_se"] == pytest.approx(
        math.sqrt(baseline["accuracy"] * (1 - baseline["accuracy"]) / baseline["test_examples"])
    )


def test_an_example_longer_than_the_context_is_truncated_and_trials_run(tiny, tmp_path):
    """The failing input: one 629-token example made every trial (LoRA too) fail."""
    import json
    import warnings

    from metapeft_optuna.tasks import load_task

    path = tmp_path / "long.jsonl"
    lines = [{"prompt": f"Q{i}:", "completion": f" a{i % 3}"} for i in range(40)]
    lines[6]["completion"] = " " + "x" * 628  # 629 byte tokens; the tiny context is 512
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    objective = PEFTObjective(load_task(path), model=tiny, search_space=LORA, budget=BUDGET)
    study = optuna.create_study(directions=objective.directions)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert any(f"{path}:7" in str(w.message) for w in caught)


def test_generation_accuracy_decodes_only_what_teacher_forcing_leaves_open(tiny, tmp_path):
    """Examples whose every teacher-forced arg-max is right are hits without decoding,
    those whose first wrong arg-max cannot normalise back onto the reference are misses;
    the score equals decoding them all."""
    from metapeft_optuna.peft.io import load_adapter
    from metapeft_optuna.tasks import normalize_answer
    from metapeft_optuna.training import PreparedTask, fine_tune
    from metapeft_optuna.training.batching import eos_id
    from metapeft_optuna.training.evaluation import _known_outcome, greedy_decode, teacher_forced

    answers = [" ab", " AB.", " cd"]  # " AB." matches " ab" only after normalisation
    task = Task(
        "const", tuple(Example(f"Q{i % 7}:", answers[i % 3]) for i in range(60)), "generation"
    )
    budget = TrainingBudget(curve_points=1, eval_examples=16, max_grad_norm=None)
    prepared = PreparedTask.prepare(task, tiny.tokenizer, budget)
    hp = {
        "learning_rate": 3e-3,
        "steps": 300,
        "batch_size": 8,
        "rank": 16,
        "alpha": 32.0,
        "dropout": 0.0,
        "target_modules": "attention_mlp",
    }  # learns the answers (2.5 s)
    result = fine_tune(tiny, prepared, "lora", hp, budget, output_dir=tmp_path / "a")
    model, tokenizer = tiny.model, tiny.tokenizer
    adapter = load_adapter(model, tmp_path / "a")
    try:
        adapter.eval()
        scores = prepared.score(adapter, tokenizer, accuracy=True)
        decoded = greedy_decode(
            adapter, [e.prompt for e in prepared.test_encoded], 8, {eos_id(tokenizer)}
        )
        full = [
            normalize_answer(tokenizer.decode(d)) == normalize_answer(e.completion)
            for d, e in zip(decoded, prepared.test)
        ]
        assert scores["accuracy"] == pytest.approx(sum(full) / len(full))
        assert scores["accuracy"] == result.accuracy
        forced = teacher_forced(adapter, prepared.test_encoded, "generation", None)
        assert any(forced.hits)  # hits without decoding
        for prefix, e, hit in zip(forced.greedy_prefixes, decoded, forced.hits):
            assert tuple(e[: len(prefix)]) == prefix[: len(e)]  # what decoding emits
            assert hit or len(prefix) <= len(e) + 1  # a wrong arg-max ends the known part
        known = [
            _known_outcome(p, e.completion, tokenizer, {eos_id(tokenizer)})
            for p, e in zip(forced.greedy_prefixes, prepared.test)
        ]
        assert any(k is False for k in known)  # misses without decoding
        assert all(k in (None, f) for k, f in zip(known, full))
        prompts = [e.prompt for e in prepared.test_encoded]
        cut = greedy_decode(adapter, prompts, 8, {eos_id(tokenizer)}, lambda i, t: len(t) == 2)
        assert cut == [d[:2] for d in decoded]  # each stopped once settled
    finally:
        adapter.detach()


def test_a_retried_trial_measures_afresh(tiny):
    """Optuna's retry callbacks copy the failed trial's user attributes: the retry's
    learning curve starts empty (the pruner reads it) and the old fail reason goes."""
    objective = PEFTObjective(
        "parity@64", tiny, budget=TrainingBudget(eval_examples=8, curve_examples=8)
    )
    study = optuna.create_study(
        directions=objective.directions, pruner=MetaPEFTPruner(use_prior=False)
    )
    params = {"method": "lora", "steps": 10, "batch_size": 4}
    inherited = [{"step": 5, "train_seconds": 1.0, "val_loss": 2.0}]
    study.enqueue_trial(
        params,
        user_attrs={schema.TRIAL_CURVE: inherited, schema.TRIAL_FAIL_REASON: "interrupted"},
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    steps = [p["step"] for p in trial.user_attrs[schema.TRIAL_CURVE]]
    assert steps == sorted(set(steps)) and steps[-1] == 10
    assert not trial.user_attrs.get(schema.TRIAL_FAIL_REASON)


def test_a_trial_still_training_after_the_deadline_is_pruned_before_its_last_point(tiny):
    passed = time.time() - 1
    objective = PEFTObjective(
        "parity@64", model=tiny, search_space=LORA, budget=BUDGET, deadline=passed
    )
    study = optuna.create_study(directions=objective.directions)
    study.enqueue_trial({"method": "lora", "steps": 20})
    study.optimize(objective, n_trials=1)
    pruned = study.trials[0]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert pruned.user_attrs[schema.TRIAL_PRUNE_REASON] == "the study's deadline passed"
    assert trial_line(pruned, objective.objectives).endswith(
        "pruned after step 10: the study's deadline passed"
    )
    # Its one curve point is its last: the training is done, so it is scored.
    one_point = dataclasses.replace(BUDGET, curve_points=1)
    last_only = PEFTObjective(
        "parity@64", model=tiny, search_space=LORA, budget=one_point, deadline=passed
    )
    study.enqueue_trial({"method": "lora", "steps": 20})
    study.optimize(last_only, n_trials=1)
    assert study.trials[1].state == optuna.trial.TrialState.COMPLETE
