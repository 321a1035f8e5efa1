"""Experience, acquisition, surrogate, MetaPEFTSystem and leave-one-task-out evaluation."""

from __future__ import annotations

import dataclasses
import json

from metapeft_optuna import DataFormatError, MetaLearningError, NotFittedError, schema
from metapeft_optuna.meta import (
    ExperienceBuffer,
    MetaHyperparameterOptimizer,
    MetaPEFTSystem,
    MethodRecommendation,
    PEFTExperience,
    PEFTSurrogate,
    SurrogateConfig,
)
from metapeft_optuna.meta.acquisition import (
    expected_hypervolume_improvement,
    hypervolume,
    knee_index,
    pareto_mask,
)
from metapeft_optuna.meta.features import Standardizer, context_vector, experience_arrays
from metapeft_optuna.meta.hpo import Observations
from metapeft_optuna.meta.loto import leave_one_task_out, tied_best_methods
from metapeft_optuna.meta.recommendation import knows_model
from metapeft_optuna.meta.selection import calibrate_method_selector
from metapeft_optuna.peft import PEFTMethod
from metapeft_optuna.tasks import TaskCharacteristics
from metapeft_optuna.training.objective import PEFTObjective
from metapeft_optuna.training.results import TrainingBudget
from metapeft_optuna.training.search_space import PEFTSearchSpace, default_specs

import numpy as np
import optuna
import pytest
from synthetic_experience import TASKS, ran, synthetic_experiences

FAST = SurrogateConfig(members=3, joint_steps=200, reptile_iterations=10)
TINY_TASKS = (
    "parity@64",
    "iris",
    "sentiment_strength@64",
    "addition@64",
    "language_id@64",
    "roman_numerals@64",
)


@pytest.fixture(scope="module")
def experiences():
    return synthetic_experiences(per_task=24)


@pytest.fixture(scope="module")
def fitted(experiences):
    return MetaPEFTSystem(surrogate_config=FAST).fit(ExperienceBuffer(experiences))


TINY_SPACE = PEFTSearchSpace(specs=default_specs(steps=(2, 4, 2)))  # quick fine-tunes


@pytest.fixture(scope="module")
def tiny_storage(tmp_path_factory, tiny):
    """Real experience: six tiny-model studies (3 trials each) in a SQLite storage."""
    path = tmp_path_factory.mktemp("storage") / "experience.db"
    url = f"sqlite:///{path}"
    budget = TrainingBudget(curve_points=2, eval_examples=8, curve_examples=8)
    for task in TINY_TASKS:
        objective = PEFTObjective(task, model=tiny, search_space=TINY_SPACE, budget=budget)
        study = optuna.create_study(
            study_name=task,
            storage=url,
            directions=objective.directions,
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        study.optimize(objective, n_trials=3)
    optuna.create_study(study_name="unrelated", storage=url).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    return url


# --- experience -------------------------------------------------------------------------------
def test_buffer_reads_metapeft_studies_and_skips_others(tiny_storage):
    buffer = ExperienceBuffer.from_storages([tiny_storage])
    assert len(buffer) == 18 and buffer.task_names() == sorted(TINY_TASKS)
    experience = next(iter(buffer))
    assert experience.model_info["name"] == "tiny"
    # Every test metric is read by name: val_loss besides the accuracy objective.
    assert set(experience.performance_metrics) >= {*schema.DEFAULT_OBJECTIVES, "val_loss"}
    assert experience.learning_curve and experience.state == "complete"
    assert experience.memory_usage == experience.performance_metrics["peak_memory_mb"]
    assert experience.quality_objective == "accuracy"  # what the study optimised
    skipped = ExperienceBuffer.from_storages([tiny_storage], exclude_studies=["iris"])
    assert "iris" not in skipped.task_names() and len(skipped) == 15


def test_buffer_deduplicates_and_round_trips_jsonl(tiny_storage, tmp_path):
    buffer = ExperienceBuffer.from_storages([tiny_storage, tiny_storage])
    assert len(buffer) == 18  # the same storage twice adds nothing
    path = buffer.export_jsonl(tmp_path / "exp.jsonl")
    again = ExperienceBuffer.from_storages([str(path)])
    assert [e.to_dict() for e in again] == [e.to_dict() for e in buffer]
    assert again.import_jsonl(path) == 0
    np.testing.assert_array_equal(
        next(iter(again)).task_embedding, next(iter(buffer)).task_embedding
    )


def test_quality_follows_the_study_quality_objective(experiences):
    """A task re-scored by val_loss keeps trials that also measured accuracy (0 for
    all of them): their quality is minus val_loss, as for the task's later trials."""
    metrics = {"accuracy": 0.0, "val_loss": 2.5, "peak_memory_mb": 9.0, "train_seconds": 1.0}
    legacy = dataclasses.replace(experiences[0], performance_metrics=metrics)
    assert legacy.quality == 0.0  # not recorded: accuracy where measured
    rescored = dataclasses.replace(legacy, quality_objective="val_loss")
    assert rescored.quality == -2.5
    assert PEFTExperience.from_dict(rescored.to_dict()).quality == -2.5


def test_pruned_trials_are_experience_and_failed_ones_are_not(tmp_path, experiences):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        storage=url, directions=schema.directions(schema.DEFAULT_OBJECTIVES)
    )
    chars = experiences[0].task_characteristics
    study.set_user_attr(schema.STUDY_TASK, {"name": "t", "characteristics": chars.to_dict()})
    study.set_user_attr(schema.STUDY_MODEL, {"name": "m"})
    for state in ("pruned", "failed", "complete"):
        trial = study.ask()
        trial.suggest_categorical("method", ["lora"])
        trial.set_user_attr(schema.TRIAL_CURVE, [{"step": 1, "val_metric": 0.5}])
        if state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif state == "failed":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, [0.7, 100.0, 2.0])
    buffer = ExperienceBuffer.from_storages([url])
    assert sorted(e.state for e in buffer) == ["complete", "pruned"]
    assert len(buffer.complete()) == 1
    pruned = next(e for e in buffer if e.state == "pruned")
    assert pruned.accuracy is None and pruned.learning_curve[0]["val_metric"] == 0.5


def test_replay_sampling_is_task_balanced(experiences):
    big = list(experiences) + [e for e in experiences if e.task_name == TASKS[0]] * 0
    buffer = ExperienceBuffer(big[: 24 * 2 + 5])  # two full tasks and a sliver of a third
    counts = {}
    for e in buffer.sample(3000, np.random.default_rng(0)):
        counts[e.task_name] = counts.get(e.task_name, 0) + 1
    assert min(counts.values()) > 800  # each of the 3 tasks ~1000 despite 24/24/5 trials
    with pytest.raises(MetaLearningError, match="empty experience buffer"):
        ExperienceBuffer().sample(1, np.random.default_rng(0))


def test_bad_experience_files(tmp_path):
    with pytest.raises(DataFormatError, match="experience file not found"):
        ExperienceBuffer.from_storages([str(tmp_path / "none.jsonl")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"uid": 1}\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:1: not a metapeft experience"):
        ExperienceBuffer().import_jsonl(bad)
    bad.write_text(json.dumps({"format_version": 99}) + "\n")
    with pytest.raises(DataFormatError, match="newer than this package reads"):
        ExperienceBuffer().import_jsonl(bad)


# --- acquisition -------------------------------------------------------------------------------
def test_pareto_and_hypervolume_against_monte_carlo():
    rng = np.random.default_rng(0)
    points = rng.random((12, 3))
    reference = np.ones(3) * 1.2
    samples = rng.random((200_000, 3)) * reference
    dominated = np.any(np.all(points[None] <= samples[:, None], axis=2), axis=1)
    estimate = dominated.mean() * np.prod(reference)
    assert hypervolume(points, reference) == pytest.approx(estimate, rel=0.02)
    mask = pareto_mask(points)
    assert hypervolume(points[mask], reference) == pytest.approx(hypervolume(points, reference))


def test_ehvi_matches_sampling_and_prefers_promising_points():
    rng = np.random.default_rng(1)
    front = np.array([[0.2, 0.8, 0.5], [0.6, 0.3, 0.4], [0.5, 0.5, 0.1]])
    reference = np.ones(3)
    mean = np.array([[0.3, 0.3, 0.3], [0.9, 0.9, 0.9]])
    std = np.array([[0.1, 0.1, 0.1], [0.05, 0.05, 0.05]])
    ehvi = expected_hypervolume_improvement(mean, std, front, reference)
    base = hypervolume(front, reference)
    draws = rng.normal(mean[0], std[0], size=(4000, 3))
    sampled = np.mean([hypervolume(np.vstack([front, d]), reference) - base for d in draws])
    assert ehvi[0] == pytest.approx(sampled, rel=0.05)
    assert ehvi[0] > ehvi[1] > 0


# --- surrogate and system ----------------------------------------------------------------------
def test_surrogate_predicts_with_uncertainty_and_adapts(experiences):
    space = PEFTSearchSpace()
    buffer = ExperienceBuffer(experiences)
    surrogate = PEFTSurrogate(space, FAST).fit(buffer.without_task("iris"))
    held = [e for e in experiences if e.task_name == "iris"]
    contexts, configs, targets = experience_arrays(held, space)
    mean, std = surrogate.predict(contexts[0], configs)
    assert mean.shape == std.shape == (len(held), len(schema.METRICS))
    # No experience measured val_loss: that column is unknown, the others have spread.
    known = [schema.METRICS.index(n) for n in schema.DEFAULT_OBJECTIVES]
    assert (std[:, known] > 0).all() and np.isnan(mean[:, schema.METRICS.index("val_loss")]).all()
    before = np.abs(mean[:, 0] - targets[:, 0]).mean()
    adapted = surrogate.adapt(contexts[0], configs[:12], targets[:12])
    after = np.abs(adapted.predict(contexts[0], configs[12:])[0][:, 0] - targets[12:, 0]).mean()
    assert after < before  # a few shots of the new task help
    with pytest.raises(NotFittedError, match="not fitted yet"):
        PEFTSurrogate(space).predict(contexts[0], configs)
    with pytest.raises(MetaLearningError, match="at least one complete experience"):
        PEFTSurrogate(space).fit(ExperienceBuffer())


def test_recommendation_has_every_field_and_names_similar_tasks(fitted, experiences):
    chars = experiences[0].task_characteristics
    recommendation = fitted.recommend(chars, experiences[0].model_info)
    assert isinstance(recommendation, MethodRecommendation)
    assert recommendation.method in PEFTMethod
    assert 0 < recommendation.confidence <= 1
    assert {"learning_rate", "steps", "batch_size"} <= set(recommendation.hyperparameters)
    assert set(recommendation.expected_performance) >= set(schema.DEFAULT_OBJECTIVES)
    assert "Most similar past tasks: parity@64" in recommendation.reasoning
    assert sum(recommendation.method_probabilities.values()) == pytest.approx(1, abs=1e-3)
    assert json.loads(json.dumps(recommendation.to_dict()))["method"] == recommendation.method.value
    method, hyperparameters = fitted.predict_optimal_method(chars, experiences[0].model_info)
    assert isinstance(method, PEFTMethod) and hyperparameters


def test_cold_start_says_so(experiences):
    system = MetaPEFTSystem()
    recommendation = system.recommend(experiences[0].task_characteristics)
    assert "cold start" in recommendation.reasoning
    assert list(recommendation.method_probabilities.values()) == pytest.approx([1 / 6] * 6)
    assert recommendation.expected_performance == {}  # nothing is predicted
    proposals = system.hyperparameter_optimizer.propose(
        None, None, n=6, rng=np.random.default_rng(0)
    )
    assert len({p.params["method"] for p in proposals}) == 6


def test_system_save_load_round_trip(fitted, experiences, tmp_path):
    fitted.save(tmp_path / "model")
    loaded = MetaPEFTSystem.load(tmp_path / "model")
    chars, info = experiences[3].task_characteristics, experiences[3].model_info
    a, b = fitted.recommend(chars, info), loaded.recommend(chars, info)
    assert a.to_dict() == b.to_dict()
    assert len(loaded.experience_buffer) == len(fitted.experience_buffer)
    with pytest.raises(MetaLearningError, match="another search space"):
        MetaPEFTSystem.load(tmp_path / "model", PEFTSearchSpace(methods=("lora",)))
    with pytest.raises(MetaLearningError, match="not found"):
        MetaPEFTSystem.load(tmp_path / "nothing")
    meta = json.loads((tmp_path / "model" / "meta_model.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "model" / "meta_model.json").write_text(json.dumps(meta))
    with pytest.raises(MetaLearningError, match="newer than this package reads"):
        MetaPEFTSystem.load(tmp_path / "model")


def test_fitting_on_experience_outside_the_space_warns_by_parameter(experiences):
    odd = [ran(experiences[0], steps=300), ran(experiences[1], steps=5, batch_size=32)]
    match = r"batch_size 32 outside Categorical.*; steps 5..300 outside IntDistribution"
    with pytest.warns(UserWarning, match=match):
        MetaPEFTSystem(surrogate_config=FAST).fit(ExperienceBuffer([*odd, *experiences[2:]]))


def test_a_loaded_system_encodes_in_the_ranges_it_was_trained_in(fitted, tmp_path):
    # Loaded for a study searching 10-30 steps, a system trained on 10-200 steps still
    # places 200 steps at the top of its range, not far above the top of someone else's.
    fitted.save(tmp_path / "model", include_experience=False)
    narrow = PEFTSearchSpace(specs=default_specs(steps=(10, 30, 10)))
    loaded = MetaPEFTSystem.load(tmp_path / "model", narrow)
    steps = loaded.search_space.distributions()["steps"]
    assert steps == fitted.search_space.distributions()["steps"]
    column = loaded.search_space.feature_names().index("steps")
    assert loaded.search_space.encode({"method": "lora", "steps": 200})[column] == 1.0


def test_learn_from_experience_updates_incrementally(experiences):
    system = MetaPEFTSystem(surrogate_config=FAST)
    first = experiences[0]
    system.learn_from_experience(
        first.task_characteristics,
        first.method_used,
        first.hyperparameters,
        first.performance_metrics,
        model_info=first.model_info,
        task_name=first.task_name,
    )
    assert system.is_fitted  # the first experience triggers a fit
    space = system.search_space
    context = context_vector(experiences[1].task_characteristics, first.model_info)
    before = system.surrogate.predict(context, space.encode(first.hyperparameters)[None])[0]
    for e in experiences[1:5]:
        system.learn_from_experience(
            e.task_characteristics,
            e.method_used,
            e.hyperparameters,
            e.performance_metrics,
            model_info=e.model_info,
            task_name=e.task_name,
            refit_every=100,
        )
    after = system.surrogate.predict(context, space.encode(first.hyperparameters)[None])[0]
    assert len(system.experience_buffer) == 5
    assert not np.allclose(before, after)


def test_optimizer_portfolio_is_spread_and_excludes_seen(fitted, experiences):
    e = experiences[0]
    context = context_vector(e.task_characteristics, e.model_info)
    optimizer = MetaHyperparameterOptimizer(fitted.search_space, n_candidates=256)
    proposals = optimizer.propose(fitted.surrogate, context, n=4, rng=np.random.default_rng(0))
    keys = [tuple(sorted(p.params.items())) for p in proposals]
    assert len(set(keys)) == 4
    assert all(fitted.search_space.contains(p.params) for p in proposals)
    seen = [p.params for p in proposals[:2]]
    observed = Observations(params=seen, metrics=[e.performance_metrics] * 2)
    again = optimizer.propose(
        fitted.surrogate, context, observed, n=2, rng=np.random.default_rng(0)
    )
    assert all(p.params not in seen for p in again)
    assert "EHVI" in again[0].reason


class _StepsSurrogate:
    """Predicts from the steps alone: accuracy saturating with more steps, training time
    growing with them, memory flat; exact (tiny standard deviations)."""

    is_fitted = True

    def __init__(self, space: PEFTSearchSpace):
        self.column = space.feature_names().index("steps")

    def curve(self, u: np.ndarray) -> np.ndarray:
        return np.column_stack(
            [1 - np.exp(-4 * u), np.full_like(u, np.nan), np.full_like(u, 6.4), np.log(5 + 60 * u)]
        )

    def predict(self, context, encoded):
        mean = self.curve(encoded[:, self.column])
        return mean, np.full_like(mean, 1e-3)


def test_knee_index_is_the_compromise_of_the_front():
    points = np.array([[0.0, 10.0], [0.2, 1.0], [1.0, 0.0], [0.5, 5.0], [0.1, 9.0]])
    assert knee_index(points) == 1
    # Scaling an objective does not move the knee; a dominated point is never it.
    assert knee_index(points * np.array([1000.0, 0.01])) == 1
    assert knee_index(np.array([[0.5, 0.5], [0.4, 0.4]])) == 1


def test_first_proposal_of_an_empty_study_is_the_predicted_knee():
    """Good quality at low cost first, then the portfolio spreads along the front."""
    space = PEFTSearchSpace()
    surrogate = _StepsSurrogate(space)
    optimizer = MetaHyperparameterOptimizer(space, n_candidates=256)
    proposals = optimizer.propose(surrogate, None, n=3, rng=np.random.default_rng(0))
    assert proposals[0].reason.startswith("knee of the predicted Pareto front")
    steps = space.distributions()["steps"]
    grid = np.arange(steps.low, steps.high + 1, steps.step)
    u = np.array([space.encode({"steps": int(s)})[surrogate.column] for s in grid])
    predicted = surrogate.curve(u)[:, [0, 2, 3]] * np.array([-1, 1, 1])
    assert proposals[0].params["steps"] == grid[knee_index(predicted)]
    assert steps.low < proposals[0].params["steps"] < steps.high  # neither corner
    assert {p.params["steps"] for p in proposals[1:]} != {proposals[0].params["steps"]}
    assert all("EHVI" in p.reason for p in proposals[1:])
    # One objective: the best predicted quality (the corner), by expected improvement.
    single = optimizer.propose(
        surrogate, None, Observations(("accuracy",)), rng=np.random.default_rng(0)
    )[0]
    assert single.params["steps"] == steps.high


def test_cold_start_turn_of_methods_starts_at_the_trial_number():
    """Workers that start together see no parameters of each other's trials; their
    distinct trial numbers alone must send them to different methods."""
    optimizer = MetaHyperparameterOptimizer(PEFTSearchSpace())
    first = [
        optimizer.propose(None, None, Observations(number=number), rng=np.random.default_rng(0))[0]
        for number in range(len(optimizer.allowed(None)))
    ]
    assert [p.params["method"] for p in first] == optimizer.allowed(None)
    later = optimizer.propose(
        None, None, Observations(params=[first[0].params], metrics=[{}], number=1)
    )[0]
    assert later.params == first[1].params
    # Trial 6 while trial 5's parameters are not visible yet: its own method (tried by
    # trial 0) gets a random configuration, not the defaults trial 5 is running.
    seen = [p.params for p in first[:5]]
    racing = optimizer.propose(
        None,
        None,
        Observations(params=seen, metrics=[{}] * 5, number=6),
        rng=np.random.default_rng(1),
    )[0]
    assert racing.params["method"] == first[0].params["method"]
    assert racing.params not in [p.params for p in first]


def test_standardizer_not_fitted():
    with pytest.raises(NotFittedError):
        Standardizer().transform(np.zeros((1, 2)))


# --- leave-one-task-out ------------------------------------------------------------------------
def test_leave_one_task_out_on_structured_experience(experiences):
    """Task features must help where the ground truth depends on the task."""
    report = leave_one_task_out(ExperienceBuffer(experiences), config=FAST)
    summary = report.summary()
    assert summary["tasks"] == len(TASKS)
    assert summary["spearman"] > summary["spearman_agnostic"] + 0.1
    assert summary["selection_top1"] >= summary["majority_top1"]
    assert summary["selection_top2"] >= summary["selection_top1"]
    # What a recommendation follows (selector x surrogate) knows the task too.
    assert summary["recommendation_top1"] >= summary["majority_top1"]
    assert summary["recommendation_top2"] >= summary["recommendation_top1"]
    assert summary["majority_top2"] >= summary["majority_top1"]
    assert summary["spearman_memory"] > 0.5 and summary["spearman_time"] > 0.5


def test_leave_one_task_out_scores_each_task_by_its_quality_objective(experiences):
    """A task its study scored by val_loss is ranked by val_loss, not by accuracy."""
    name = experiences[0].task_name
    rescored = [  # the held-out task's loss is lowest where its accuracy is lowest
        dataclasses.replace(
            e,
            quality_objective="val_loss" if e.task_name == name else "",
            performance_metrics={
                **e.performance_metrics,
                "val_loss": 0.1 + e.accuracy if e.task_name == name else 1.1 - e.accuracy,
            },
        )
        for e in experiences
    ]
    report = leave_one_task_out(ExperienceBuffer(rescored), config=FAST, tasks=[name])
    (held,) = report.tasks
    lowest = min((e for e in experiences if e.task_name == name), key=lambda e: e.accuracy)
    assert held.quality == "val_loss" and held.best_method == lowest.method_used.value
    assert np.isfinite(held.spearman)


def test_leave_one_task_out_takes_a_task_with_no_trial_beyond_its_shots(experiences):
    """A meta-dataset being built holds tasks with a few trials: adapting on them leaves
    nothing to score, so only the zero-shot figures are reported for them."""
    name = experiences[0].task_name
    few = [e for e in experiences if e.task_name != name] + [
        e for e in experiences if e.task_name == name
    ][:3]
    report = leave_one_task_out(ExperienceBuffer(few), config=FAST, shots=5, tasks=[name])
    (held,) = report.tasks
    assert held.trials == 3 and np.isnan(held.spearman_adapted)
    assert np.isnan(held.spearman_adapted_agnostic) and np.isfinite(held.spearman_memory)


def test_leave_one_task_out_runs_on_real_tiny_experience(tiny_storage):
    """The same evaluation on real fine-tunes of 6 built-in tasks, two of them held out in
    turn (tiny model: accuracies are near chance, so only the plumbing and the
    memory/time structure are real)."""
    held_out = ("sentiment_strength@64", "language_id@64")
    report = leave_one_task_out(
        ExperienceBuffer.from_storages([tiny_storage]),
        search_space=TINY_SPACE,
        config=FAST,
        shots=1,
        tasks=held_out,
    )
    summary = report.summary()
    assert summary["tasks"] == 2 and {t.task for t in report.tasks} == set(held_out)
    ranked = [t for t in report.tasks if t.best_method]
    assert summary["tasks_with_a_best_method"] == len(ranked)
    if ranked:
        assert 0 <= summary["selection_top1"] <= 1 and 0 <= summary["majority_top1"] <= 1
    # The best method is always among those tied with it, so counting ties only adds hits.
    assert all(t.best_method in t.tied_methods for t in ranked)
    assert all(t.recommended_method != t.recommended_second for t in report.tasks)
    for kind in ("selection", "majority", "recommendation"):
        for name in (f"{kind}_top1", f"{kind}_top2"):
            assert summary[f"{name}_within_noise"] >= summary[name] or not ranked
    assert all(0 < t.selected_probability <= 1 for t in report.tasks)


def test_methods_tied_within_noise_with_the_best():
    """Methods whose best trials differ by less than their noise are all "best"; a
    val_loss task ranks by minus val_loss; no standard error means exact."""
    chars = TaskCharacteristics(64, 12, 30, "algorithmic", "classification", 0.4)

    def trial(method, metrics, quality="accuracy"):
        return PEFTExperience(chars, PEFTMethod(method), {}, metrics, quality_objective=quality)

    noisy = [
        trial("lora", {"accuracy": 0.70, "accuracy_se": 0.05}),
        trial("lora", {"accuracy": 0.20, "accuracy_se": 0.04}),
        trial("dora", {"accuracy": 0.62, "accuracy_se": 0.05}),
        trial("prompt_tuning", {"accuracy": 0.40, "accuracy_se": 0.05}),
    ]
    assert tied_best_methods(noisy) == ("lora", "dora")
    exact = [trial(m, {"accuracy": a}) for m, a in (("lora", 0.70), ("dora", 0.69))]
    assert tied_best_methods(exact) == ("lora",)
    losses = [
        trial("lora", {"val_loss": 2.0, "val_loss_se": 0.01}, "val_loss"),
        trial("dora", {"val_loss": 1.5, "val_loss_se": 0.01}, "val_loss"),
    ]
    assert tied_best_methods(losses) == ("dora",)
    assert tied_best_methods([trial("lora", {"accuracy": 0.5})] * 2) == ()


# --- method-selector calibration ---------------------------------------------------------------
def _selector_data(informative: bool, n: int = 12):
    rng = np.random.default_rng(0)
    contexts = rng.normal(size=(n, 6)).astype(np.float32)
    winner = (contexts[:, 0] > 0).astype(int) if informative else rng.integers(0, 3, n)
    return contexts, np.eye(3, dtype=np.float32)[winner]


def test_selector_calibration_shrinks_a_selector_that_only_memorises():
    """Labels unrelated to the features: held-out predictions are no better than the base
    rate, so the calibrated selector must not claim certainty."""
    contexts, labels = _selector_data(informative=False)
    calibration = calibrate_method_selector(contexts, labels, embedding_dim=8)
    raw = np.eye(3)[[0]] * 30.0  # what a memorising selector outputs: p = 1.00
    assert calibration.apply(raw).max() < 0.7
    assert calibration.prior_weight > 0.3 or calibration.temperature > 8


def test_selector_calibration_keeps_a_selector_that_generalises():
    contexts, labels = _selector_data(informative=True)
    calibration = calibrate_method_selector(contexts, labels, embedding_dim=8)
    assert calibration.apply(np.eye(3)[[0]] * 30.0).max() > 0.8


def test_selector_calibration_with_too_few_tasks_is_the_base_rate():
    calibration = calibrate_method_selector(
        np.zeros((2, 4), np.float32), np.eye(3, dtype=np.float32)[[1, 1]], embedding_dim=4
    )
    assert calibration.prior_weight == 1.0
    assert calibration.apply(np.zeros((1, 3))).tolist() == [pytest.approx([0.2, 0.6, 0.2])]


def test_fitted_selector_is_calibrated_and_saved(fitted, experiences, tmp_path):
    probabilities = fitted.method_probabilities(
        context_vector(experiences[0].task_characteristics, experiences[0].model_info)
    )
    assert probabilities.sum() == pytest.approx(1.0) and probabilities.max() < 1.0
    fitted.save(tmp_path / "model")
    loaded = MetaPEFTSystem.load(tmp_path / "model")
    assert loaded.selector_calibration_ == fitted.selector_calibration_


def test_a_model_the_experience_never_saw_gets_no_memory_or_time_prediction(fitted, experiences):
    """The synthetic experience is the tiny model's (90,624 parameters): for a 135M-model
    the costs it learned do not carry over, and the recommendation says so."""
    chars, tiny = experiences[0].task_characteristics, experiences[0].model_info
    big = {**tiny, "name": "smollm2-135m", "num_parameters": 134_515_008}
    buffer = fitted.experience_buffer
    assert knows_model(buffer, tiny) and not knows_model(buffer, big)
    seen = fitted.recommend(chars, tiny)
    unseen = fitted.recommend(chars, big)
    assert {"peak_memory_mb", "train_seconds"} <= set(seen.expected_performance)
    assert "accuracy" in unseen.expected_performance
    assert not {"peak_memory_mb", "train_seconds"} & set(unseen.expected_performance)
    assert "memory and time not predicted" in unseen.reasoning
    _, portfolio = fitted.portfolio(chars, big, Observations(), 3, rng=np.random.default_rng(0))
    assert all("peak_memory_mb" not in p.prediction() for p in portfolio)
    assert all("memory and time not predicted" in p.reason for p in portfolio[1:])


@pytest.mark.parametrize(
    "memory, seconds",
    [(float("inf"), 10.0), (700.0, 0.5), (7000.0, 200.0), (50.0, 2.0)],
    ids=["infinite", "fast-machine", "large", "small"],
)
def test_model_based_search_survives_any_values(experiences, memory, seconds):
    """A study whose values are infinite or far from the experience's scale still gets
    finite EHVI and predictions, at the study's own scale (not a silent cold start)."""
    from metapeft_optuna.meta import MetaPEFTSystem, SurrogateConfig
    from metapeft_optuna.meta.hpo import Observations

    config = SurrogateConfig(members=2, joint_steps=150, reptile_iterations=5)
    system = MetaPEFTSystem(surrogate_config=config).fit(ExperienceBuffer(experiences))
    first = experiences[0]
    rng = np.random.default_rng(0)
    params = [system.search_space.sample(rng) for _ in range(4)]
    metrics = [
        {"accuracy": 0.6 + 0.05 * i, "peak_memory_mb": memory * (1 + 0.1 * i),
         "train_seconds": seconds * (1 + 0.2 * i)}
        for i in range(4)
    ]  # fmt: skip
    observations = Observations(schema.DEFAULT_OBJECTIVES, params, metrics, number=4)
    proposal = system.propose(first.task_characteristics, first.model_info, observations, rng=rng)
    assert np.isfinite(proposal.acquisition) and not proposal.reason.startswith("cold start")
    predicted = proposal.prediction()
    assert all(np.isfinite(predicted[k]) for k in schema.DEFAULT_OBJECTIVES)
    if np.isfinite(memory):  # within a factor of 3 of the study's own scale
        assert memory / 3 < predicted["peak_memory_mb"] < memory * 1.4 * 3
