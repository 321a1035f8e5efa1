"""MetaPEFTSampler: Optuna's own contract suites, warm start, cold start, fallback, seeds,
pickling, and two workers on one storage."""

from __future__ import annotations

import multiprocessing
import pickle
import sys

from metapeft_optuna import ConfigError, schema
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, SurrogateConfig
from metapeft_optuna.samplers import MetaPEFTSampler
from metapeft_optuna.samplers._sampler import meta_space
from metapeft_optuna.tasks import TaskCharacteristics, load_task
from metapeft_optuna.training import PEFTObjective, PEFTSearchSpace, TrainingBudget
from metapeft_optuna.training.search_space import ParamSpec, default_specs

import optuna
import pytest
from conftest import needs_torch
from optuna.distributions import IntDistribution
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)
from synthetic_experience import synthetic_experiences

optuna.logging.set_verbosity(optuna.logging.WARNING)
BUDGET = TrainingBudget(curve_points=2, eval_examples=8, curve_examples=8)
QUICK_SPACE = PEFTSearchSpace(
    specs=[
        ParamSpec("steps", IntDistribution(2, 4, step=2), s.methods) if s.name == "steps" else s
        for s in default_specs()
    ]
)


class TestBasicContract(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: MetaPEFTSampler(use_prior=False, seed=0)


class TestRelativeContract(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: MetaPEFTSampler(use_prior=False, seed=0)


class TestMultiObjectiveContract(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: MetaPEFTSampler(use_prior=False, seed=0)


@pytest.fixture(scope="module")
def system():
    config = SurrogateConfig(members=3, joint_steps=200, reptile_iterations=10)
    return MetaPEFTSystem(surrogate_config=config).fit(ExperienceBuffer(synthetic_experiences()))


@pytest.fixture(scope="module")
def objective(tiny):
    return PEFTObjective("parity@64", model=tiny, search_space=QUICK_SPACE, budget=BUDGET)


def _run(sampler, objective, n, directions=None):
    study = optuna.create_study(directions=directions or objective.directions, sampler=sampler)
    study.optimize(objective, n_trials=n)
    return study


def test_warm_start_portfolio_then_model_based_with_interleaved_exploration(system, objective):
    sampler = MetaPEFTSampler(
        objective=objective, system=system, n_warm_start=3, explore_every=3, seed=0
    )
    study = _run(sampler, objective, 6)
    phases = [t.user_attrs[schema.TRIAL_PREDICTION]["phase"] for t in study.trials]
    assert phases == ["warm start"] * 3 + ["model-based"] * 2 + ["interleaved exploration"]
    assert "TPESampler" in study.trials[5].user_attrs[schema.TRIAL_PREDICTION]["reason"]
    warm = [tuple(sorted(t.params.items())) for t in study.trials[:3]]
    assert len(set(warm)) == 3  # a portfolio, not the same configuration three times
    first = study.trials[0].user_attrs[schema.TRIAL_PREDICTION]
    assert "meta-model recommendation" in first["reason"]
    assert {"accuracy", "accuracy_std", "peak_memory_mb", "train_seconds"} <= set(first)
    recommendation = study.user_attrs[schema.STUDY_RECOMMENDATION]
    assert recommendation["method"] == study.trials[0].params["method"]
    assert "Most similar past tasks" in recommendation["reasoning"]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_cold_start_tries_methods_in_turn_then_learns_from_the_study(objective):
    sampler = MetaPEFTSampler(objective=objective, use_prior=False, seed=0)
    study = _run(sampler, objective, 7)
    methods = [t.params["method"] for t in study.trials]
    assert methods[:6] == list(QUICK_SPACE.methods)
    phases = [t.user_attrs[schema.TRIAL_PREDICTION]["phase"] for t in study.trials]
    assert phases == ["cold start"] * 6 + ["model-based (this study only)"]


def test_method_choices_come_from_the_objective(system, tiny):
    space = PEFTSearchSpace(methods=("prefix_tuning", "p_tuning"), specs=QUICK_SPACE.specs)
    objective = PEFTObjective("parity@64", model=tiny, search_space=space, budget=BUDGET)
    sampler = MetaPEFTSampler(system=system, seed=0)  # no objective: context from the study
    study = _run(sampler, objective, 3)
    assert {t.params["method"] for t in study.trials} <= {"prefix_tuning", "p_tuning"}


def test_the_meta_model_searches_every_method_in_the_studys_ranges():
    meta = meta_space(PEFTSearchSpace(methods=("lora",), specs=QUICK_SPACE.specs))
    assert meta.methods == PEFTSearchSpace().methods
    assert meta.distributions()["steps"] == IntDistribution(2, 4, step=2)
    # A parameter of the study's own is not the meta-model's: the study's space stays.
    extra = ParamSpec("warmup", IntDistribution(0, 5), ("lora",))
    own = PEFTSearchSpace(methods=("lora",), specs=[*default_specs(), extra])
    assert meta_space(own) is own


def test_single_objective_study(system, tiny):
    objective = PEFTObjective(
        "parity@64", model=tiny, search_space=QUICK_SPACE, budget=BUDGET, objectives=("accuracy",)
    )
    sampler = MetaPEFTSampler(
        objective=objective, system=system, n_warm_start=1, explore_every=None, seed=0
    )
    study = _run(sampler, objective, 3, directions=["maximize"])
    reasons = [t.user_attrs[schema.TRIAL_PREDICTION]["reason"] for t in study.trials]
    assert "EI on accuracy" in reasons[-1]


class RecordingSampler(optuna.samplers.RandomSampler):
    def __init__(self):
        super().__init__(seed=0)
        self.calls: list[str] = []

    def before_trial(self, study, trial):
        self.calls.append("before")

    def after_trial(self, study, trial, state, values):
        self.calls.append("after")

    def reseed_rng(self):
        self.calls.append("reseed")
        super().reseed_rng()


def test_extra_parameters_go_to_the_independent_sampler(objective):
    fallback = RecordingSampler()
    sampler = MetaPEFTSampler(objective=objective, use_prior=False, independent_sampler=fallback)

    def with_extra(trial):
        trial.suggest_float("warmup_ratio", 0.0, 0.2)
        return objective(trial)

    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.optimize(with_extra, n_trials=2)
    assert all(0 <= t.params["warmup_ratio"] <= 0.2 for t in study.trials)
    sampler.reseed_rng()
    assert fallback.calls == ["before", "after", "before", "after", "reseed"]


class RelativeRecordingSampler(optuna.samplers.TPESampler):
    """Multivariate TPE that records the trials it sampled relatively."""

    def __init__(self):
        super().__init__(seed=0, multivariate=True, n_startup_trials=2)
        self.relative: list[int] = []

    def sample_relative(self, study, trial, search_space):
        self.relative.append(trial.number)
        return super().sample_relative(study, trial, search_space)


def _deterministic(trial):
    _, hp = QUICK_SPACE.suggest(trial, num_layers=2)
    return 0.5 + 0.01 * hp["steps"], 100.0 + hp["batch_size"], float(hp["steps"])


def test_exploration_trials_use_the_fallbacks_relative_sampling(system, objective):
    fallback = RelativeRecordingSampler()
    sampler = MetaPEFTSampler(
        task_characteristics=objective.characteristics,
        model_info=objective.loaded.info.to_dict(),
        system=system,
        n_warm_start=2,
        explore_every=2,
        independent_sampler=fallback,
        seed=0,
    )
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.optimize(_deterministic, n_trials=6)
    phases = [t.user_attrs[schema.TRIAL_PREDICTION]["phase"] for t in study.trials]
    assert phases == ["warm start"] * 2 + ["model-based", "interleaved exploration"] * 2
    assert fallback.relative == [3, 5]


def test_by_default_the_warm_start_hands_over_to_multivariate_tpe(system, objective):
    sampler = MetaPEFTSampler(
        task_characteristics=objective.characteristics,
        model_info=objective.loaded.info.to_dict(),
        system=system,
        seed=0,
    )
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.optimize(_deterministic, n_trials=5)
    phases = [t.user_attrs[schema.TRIAL_PREDICTION]["phase"] for t in study.trials]
    assert phases == ["warm start"] * 3 + ["hand-over"] * 2
    assert sampler._independent._multivariate


def test_the_fallback_is_chosen_by_name(monkeypatch):
    assert MetaPEFTSampler(use_prior=False)._independent._n_startup_trials == 6
    with pytest.raises(ConfigError, match=r"fallback='cmaes'; use one of \('tpe', 'gp'\)"):
        MetaPEFTSampler(fallback="cmaes")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ConfigError, match="GPSampler needs torch, which is not installed"):
        MetaPEFTSampler(fallback="gp")


@needs_torch
def test_the_warm_start_can_hand_over_to_gp_and_a_restart_replays_nothing(system, objective):
    context = {
        "task_characteristics": objective.characteristics,
        "model_info": objective.loaded.info.to_dict(),
        "system": system,
        "fallback": "gp",
        "seed": 0,
    }
    sampler = MetaPEFTSampler(**context)
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.optimize(_deterministic, n_trials=4)  # 3 warm-start trials, 1 random start-up
    # A restart (a new sampler, same seed) goes on with start-up draws of its own.
    study.sampler = MetaPEFTSampler(**context)
    study.optimize(_deterministic, n_trials=3)  # 2 random start-up, 1 GP trial
    phases = [t.user_attrs[schema.TRIAL_PREDICTION]["phase"] for t in study.trials]
    assert phases == ["warm start"] * 3 + ["hand-over"] * 4
    assert isinstance(study.sampler._independent, optuna.samplers.GPSampler)
    assert study.sampler._independent._gprs_cache_list is not None  # the 7th trial was GP's
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 7


def test_seed_reproducibility(system, objective):
    """Same seed and same observations give the same configurations (real fine-tunes
    measure time and memory a little differently every run, so the objective here is a
    deterministic function of the configuration)."""

    context = {
        "task_characteristics": objective.characteristics,
        "model_info": objective.loaded.info.to_dict(),
    }
    runs = []
    for _ in range(2):
        sampler = MetaPEFTSampler(**context, system=system, n_warm_start=2, seed=7)
        study = optuna.create_study(directions=objective.directions, sampler=sampler)
        study.optimize(_deterministic, n_trials=4)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]
    assert len({tuple(sorted(p.items())) for p in runs[0]}) == 4


def test_pickling(system, objective):
    sampler = MetaPEFTSampler(objective=objective, system=system, seed=0)
    restored = pickle.loads(pickle.dumps(sampler))
    study = _run(restored, objective, 2)
    assert len(study.trials) == 2 and study.trials[0].params


def _worker(url: str, study_name: str, n_trials: int) -> None:
    import metapeft_optuna  # noqa: F401  (BLAS before mlx)
    from metapeft_optuna.samplers import MetaPEFTSampler as Sampler
    from metapeft_optuna.training import PEFTObjective as Objective

    objective = Objective("parity@64", model="tiny", search_space=QUICK_SPACE, budget=BUDGET)
    study = optuna.load_study(study_name=study_name, storage=url, sampler=Sampler(use_prior=False))
    study.optimize(objective, n_trials=n_trials)


def test_two_workers_share_one_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(
        study_name="shared", storage=url, directions=schema.directions(schema.DEFAULT_OBJECTIVES)
    )
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(url, "shared", 3)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
        assert worker.exitcode == 0
    study = optuna.load_study(study_name="shared", storage=url)
    assert len(study.trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    buffer = ExperienceBuffer.from_storages([url])
    assert len(buffer) == 6 and len({e.uid for e in buffer}) == 6
    configurations = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configurations)) == 6


def test_changed_method_choices_are_refused_by_name(objective, tiny):
    study = _run(MetaPEFTSampler(objective=objective, use_prior=False, seed=0), objective, 1)
    fewer = PEFTSearchSpace(methods=("lora", "dora"), specs=QUICK_SPACE.specs)
    narrowed = PEFTObjective("parity@64", model=tiny, search_space=fewer, budget=BUDGET)
    with pytest.raises(ConfigError, match=r"searched method over \['lora', 'dora', 'adalora'"):
        narrowed.check_study(study)


def test_same_seed_workers_and_restarts_never_replay(system, tiny):
    """Samplers with the same seed on one study (two workers taking turns, then a
    restarted one) propose no configuration twice: every trial's randomness derives
    from (seed, trial number)."""
    chars = TaskCharacteristics.from_task(load_task("parity@64"), tiny[1])
    study = optuna.create_study(directions=schema.directions(schema.DEFAULT_OBJECTIVES))
    study.set_metric_names(list(schema.DEFAULT_OBJECTIVES))

    def sampler():
        return MetaPEFTSampler(
            task_characteristics=chars, model_info=tiny[2].to_dict(), system=system, seed=0
        )

    workers = [sampler(), sampler()]
    for number in range(16):
        if number == 12:
            workers = [sampler()]  # a restart
        study.sampler = workers[number % len(workers)]
        trial = study.ask()
        # The system's own space: every warm-start parameter comes from the proposal,
        # so the workers' independent samplers see the same calls.
        system.search_space.suggest(trial, num_layers=2)
        rank = trial.params.get("lora_rank", 1)
        study.tell(trial, [1 / (1 + number), 10.0 * rank, trial.params["learning_rate"]])
    configurations = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configurations)) == 16


def test_the_storage_is_the_experience(objective, tmp_path):
    """Without a prior, a second study in a storage starts warm from the first one's
    trials (the storage is the experience), and cold when told not to learn from it."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    first = optuna.create_study(
        study_name="first",
        storage=url,
        directions=objective.directions,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    first.optimize(objective, n_trials=4)
    phases = {}
    for learn in (True, False):
        sampler = MetaPEFTSampler(
            objective=objective, use_prior=False, learn_from_storage=learn, seed=0
        )
        study = optuna.create_study(
            study_name=f"second-{learn}",
            storage=url,
            directions=objective.directions,
            sampler=sampler,
        )
        study.optimize(objective, n_trials=1)
        phases[learn] = study.trials[0].user_attrs[schema.TRIAL_PREDICTION]["phase"]
        assert len(sampler._search_policy(study).system.experience_buffer) == (4 if learn else 0)
    assert phases == {True: "warm start", False: "cold start"}
