"""Compare MetaPEFTSampler with other samplers, the way the HPO literature does.

Leave-one-task-out: for every target task, the meta-model and the warm-start baseline see
only the other tasks of the meta-dataset. Samplers: MetaPEFTSampler, TPE
(multi-objective, multivariate), NSGA-II, GPSampler, Random, and an auto-sklearn-style
warm start (the best configurations of the nearest tasks by meta-features enqueued first,
then TPE); with ``--optunahub-registry PATH`` also OptunaHub's ``meta_learn_tpe``,
which needs Optuna 4.x (it reads TPE internals Optuna 5 changed): make its environment
with ``make .venv-optuna4/.installed``, take a local copy of the registry
(``git clone https://github.com/optuna/optunahub-registry``) and run this script with
``.venv-optuna4/bin/python`` (``--samplers meta_learn_tpe`` runs it alone, for
``--summarise`` to merge with the other samplers' run under Optuna 5). Every sampler
searches the space the experience was recorded in (``build_meta_dataset.recorded_space``:
10-200 steps for v2).

Metric: hypervolume of (quality, log peak memory, log training time) after 1..N trials,
objectives normalised per task, fixed reference point, divided by the hypervolume of the
task's best known front (1.0 = found it); mean and spread over seeds. Quality is each
task's own quality objective (its study's: accuracy, or val_loss for free-form answers;
v1 experience, which does not record it, is accuracy), and each target study optimises
the task's objectives by name, as ``PEFTObjective`` would. A trial that fails adds
nothing to the front. Also reported: the trials MetaPEFTSampler needs to reach TPE's
final hypervolume ("trials to match").

Modes:
- ``fast``: trials are answered by per-task surrogate models (random forests) fitted on the
  meta-dataset; their cross-validated fit quality is reported.
- ``live``: real fine-tunes of SmolLM2-135M with the meta-dataset's trial protocol (400
  test examples, a 4-point curve on 64 validation examples); the meta-model learns from
  ``--experience`` without the live tasks (at any size), so they are new to it. Each
  (task, sampler, seed) is a study in ``--storage``; a rerun resumes them, and
  ``benchmarks/pause_build.sh`` holds it between trials as it holds the build.

    python benchmarks/compare_samplers.py --mode fast [--seeds 10] [--trials 50]
    nohup python benchmarks/compare_samplers.py --mode live --tasks compare_numbers@256 \\
        words_to_number@256 --seeds 3 --trials 20 >> studies/compare_live.log 2>&1 &

Writes a CSV, PNG plots and a markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna import ConfigError, schema
from metapeft_optuna.atomic import atomic_write_text
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, PEFTExperience
from metapeft_optuna.meta.acquisition import hypervolume, pareto_mask
from metapeft_optuna.meta.features import (
    Standardizer,
    context_vector,
    target_columns,
    target_vector,
)
from metapeft_optuna.samplers import FALLBACKS, MetaPEFTSampler
from metapeft_optuna.training import PEFTSearchSpace, TrainingBudget
from metapeft_optuna.validation import require_torch

import numpy as np
import optuna
from build_meta_dataset import (
    IDLE,
    counted,
    enqueue_redo,
    mark_interrupted,
    recorded_space,
    storage_lock,
    wait_while_held,
)

SAMPLERS = ("meta", "tpe", "nsga2", "gp", "random", "warmstart")
LABELS = {
    "meta": "MetaPEFTSampler",
    "meta_gp": "MetaPEFTSampler, GP hand-over",
    "tpe": "TPE",
    "nsga2": "NSGA-II",
    "gp": "GPSampler",
    "random": "Random",
    "warmstart": "auto-sklearn warm start + TPE",
    "meta_learn_tpe": "OptunaHub meta_learn_tpe",
}
SHORT_LABELS = {"meta": "MetaPEFT", "meta_gp": "MetaPEFT (GP hand-over)"}  # in sentences
REFERENCE = np.full(3, 1.1)
MIN_TRIALS = 10  # recorded trials a task needs for its oracle (5-fold cross-validated)
FLOAT_COLUMNS = ("normalised_hv", "first_quality", "best_known_quality")
# The meta-dataset's trial protocol (benchmarks/build_meta_dataset.py), for live mode.
LIVE_BUDGET = TrainingBudget(curve_points=4, curve_examples=64, eval_examples=400)


# --- objectives, normalisation and the metric --------------------------------------------
def task_objectives(experiences: list[PEFTExperience]) -> tuple[str, ...]:
    """The objectives of a task's study: its quality objective (accuracy where the
    experience does not record one, as in v1), then peak memory and training time.

    Raises:
        SystemExit: The task's experience mixes quality objectives (say v1 and v2
            merged): one protocol at a time.
    """
    qualities = {e.quality_objective or "accuracy" for e in experiences}
    if len(qualities) > 1:
        sys.exit(
            f"{experiences[0].task_name}: its experience mixes quality objectives "
            f"{sorted(qualities)}; compare the experience of one meta-dataset at a time."
        )
    return schema.default_objectives(qualities.pop())


def objective_values(target: np.ndarray, objectives: tuple[str, ...]) -> list[float]:
    """A target vector (``target_vector``: the log where ``log_scale``) as the values an
    Optuna trial reports."""
    return [
        float(np.exp(t)) if schema.OBJECTIVE_SPECS[o].log_scale else float(t)
        for t, o in zip(target, objectives)
    ]


class TaskScale:
    """Per-task normalisation of the minimised targets (quality, log MB, log s) to
    about [0, 1], over the finite rows of ``targets``."""

    def __init__(
        self, targets: np.ndarray, objectives: tuple[str, ...] = schema.DEFAULT_OBJECTIVES
    ):
        self.signs = target_columns(objectives)[1]
        minimised = np.atleast_2d(targets) * self.signs
        minimised = minimised[np.isfinite(minimised).all(axis=1)]
        self.low = minimised.min(axis=0)
        self.high = minimised.max(axis=0)
        self.span = np.where(self.high - self.low > 1e-9, self.high - self.low, 1.0)

    def __call__(self, targets: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(targets) * self.signs - self.low) / self.span


def best_quality(targets: np.ndarray, objectives: tuple[str, ...]) -> float:
    """The best quality among the finite rows of ``targets``, as trials report it (NaN
    when there is none)."""
    values = np.array([objective_values(t, objectives)[0] for t in np.atleast_2d(targets)])
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan")
    return float(values[np.argmin(schema.OBJECTIVE_SPECS[objectives[0]].sign * values)])


def run_columns(
    task: str,
    sampler: str,
    seed: int,
    outcomes: np.ndarray,
    best: float,
    objectives: tuple[str, ...],
) -> dict[str, Any]:
    """The columns every row of one run shares: the quality objective, the first trial's
    quality and the best quality known for the task (as trials report them)."""
    first = objective_values(outcomes[0], objectives)[0]
    return {
        "task": task,
        "sampler": sampler,
        "seed": seed,
        "quality": objectives[0],
        "first_quality": first,
        "best_known_quality": best,
    }


def hv_curve(points: np.ndarray, best_hv: float) -> list[float]:
    """Normalised hypervolume of the first 1..n points (a failed trial's row, NaN, is
    not below the reference point and adds nothing)."""
    return [hypervolume(points[:n], REFERENCE) / best_hv for n in range(1, len(points) + 1)]


def reference_pool(space: PEFTSearchSpace, size: int = 3000) -> list[dict[str, Any]]:
    """The random configurations (same for every task) over which, with the task's own
    recorded ones, its surrogates' best front and best known accuracy are taken."""
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(size)]


# --- the fast-mode oracle ----------------------------------------------------------------
def oracle_tasks(paths: list[str]) -> dict[str, list[PEFTExperience]]:
    """The experience at ``paths`` by source task, without the tasks that recorded fewer
    than ``MIN_TRIALS`` trials (a meta-dataset still being built), each named once."""
    groups = ExperienceBuffer.from_storages(paths).by_task()
    for key, group in sorted(groups.items()):
        if len(group) < MIN_TRIALS:
            print(f"left out {key}: {len(group)} trials, an oracle needs {MIN_TRIALS}")
    return {k: g for k, g in groups.items() if len(g) >= MIN_TRIALS}


class TaskOracle:
    """Random-forest surrogates of one task's objectives, fitted on its recorded trials."""

    def __init__(self, experiences: list[PEFTExperience], space: PEFTSearchSpace, seed: int = 0):
        from sklearn.ensemble import RandomForestRegressor

        self.space = space
        self.objectives = task_objectives(experiences)
        x = np.stack([space.encode(e.hyperparameters) for e in experiences])
        y = np.stack([target_vector(e.performance_metrics, self.objectives) for e in experiences])
        self.models = [
            RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed).fit(
                x, y[:, j]
            )
            for j in range(3)
        ]
        self.fit_quality = self._cross_validated(x, y, seed, self.objectives[0])

    @staticmethod
    def _cross_validated(
        x: np.ndarray, y: np.ndarray, seed: int, objective: str
    ) -> dict[str, float]:
        from scipy.stats import spearmanr
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.model_selection import KFold, cross_val_predict

        quality = {}
        for j, name in enumerate((objective, "log_memory", "log_time")):
            predicted = cross_val_predict(
                RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed),
                x,
                y[:, j],
                cv=KFold(5, shuffle=True, random_state=seed),
            )
            residual = ((predicted - y[:, j]) ** 2).sum()
            total = ((y[:, j] - y[:, j].mean()) ** 2).sum()
            quality[f"{name}_r2"] = float(1 - residual / total) if total > 0 else float("nan")
            quality[f"{name}_spearman"] = float(spearmanr(predicted, y[:, j]).correlation)
        return quality

    def predict(self, configurations: list[dict[str, Any]]) -> np.ndarray:
        """``(n, 3)`` predicted targets, one batched forest call per objective."""
        x = np.stack([self.space.encode(p) for p in configurations])
        return np.column_stack([m.predict(x) for m in self.models])

    def __call__(self, params: dict[str, Any]) -> np.ndarray:
        return self.predict([params])[0]


def task_problem(
    experiences: list[PEFTExperience], space: PEFTSearchSpace, pool: list[dict[str, Any]]
) -> tuple[TaskOracle, TaskScale, float, np.ndarray]:
    """One task as a benchmark problem: its oracle, its normalisation, the hypervolume of
    its best known front (over its recorded trials and the oracle on ``pool``), and the
    oracle's targets on ``pool`` and the recorded configurations."""
    oracle = TaskOracle(experiences, space)
    targets = np.stack(
        [target_vector(e.performance_metrics, oracle.objectives) for e in experiences]
    )
    oracle_targets = oracle.predict(pool + [e.hyperparameters for e in experiences])
    scale = TaskScale(np.vstack([targets, oracle_targets]), oracle.objectives)
    best_points = scale(oracle_targets)
    best_hv = hypervolume(best_points[pareto_mask(best_points)], REFERENCE)
    return oracle, scale, best_hv, oracle_targets


# --- samplers ------------------------------------------------------------------------------
def nearest_tasks(
    target: PEFTExperience, others: dict[str, list[PEFTExperience]], k: int = 3
) -> list[list[PEFTExperience]]:
    """The ``k`` source tasks nearest to the target by standardised meta-features."""
    keys = sorted(others)
    contexts = np.stack(
        [
            context_vector(others[key][0].task_characteristics, others[key][0].model_info)
            for key in keys
        ]
    )
    scaler = Standardizer().fit(contexts)
    here = scaler.transform(context_vector(target.task_characteristics, target.model_info)[None])
    distances = np.linalg.norm(scaler.transform(contexts) - here, axis=1)
    return [others[keys[i]] for i in np.argsort(distances)[:k]]


def warm_start_configs(
    target: PEFTExperience, others: dict[str, list[PEFTExperience]], n: int = 6
) -> list[dict[str, Any]]:
    """auto-sklearn style: the best configurations (by each task's quality objective) of
    the nearest tasks."""
    configs = []
    for group in nearest_tasks(target, others):
        for e in sorted(group, key=lambda e: -e.quality)[:2]:
            configs.append(dict(e.hyperparameters))
    return configs[:n]


def make_sampler(
    name: str,
    seed: int,
    context: tuple,
    system: MetaPEFTSystem | None,
    registry: str | None,
    source_studies: list[optuna.Study],
    meta_options: dict[str, Any] | None = None,
    space: PEFTSearchSpace | None = None,
):
    if name == "meta":
        chars, info = context
        return MetaPEFTSampler(
            task_characteristics=chars,
            model_info=info,
            search_space=space,
            system=system,
            use_prior=False,
            seed=seed,
            **(meta_options or {}),
        )
    if name in ("tpe", "warmstart"):
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "meta_learn_tpe":
        if int(optuna.__version__.split(".")[0]) >= 5:
            # It reads TPE internals that Optuna 5 changed ("'NoneType' object is not
            # callable" at its first model-based trial).
            sys.exit(
                f"--optunahub-registry: meta_learn_tpe needs Optuna 4.x, this is "
                f"{optuna.__version__}; run with the environment `make .venv-optuna4/.installed` "
                "makes (.venv-optuna4/bin/python benchmarks/compare_samplers.py ...)"
            )
        try:
            import optunahub
        except ImportError:
            sys.exit("--optunahub-registry needs the optunahub package: pip install optunahub")
        root = Path(registry)
        root = root / "package" if (root / "package").is_dir() else root
        module = optunahub.load_local_module(
            package="samplers/meta_learn_tpe", registry_root=str(root)
        )
        return module.MetaLearnTPESampler(source_studies=source_studies, seed=seed)
    raise ValueError(name)


def run_sampler(
    name: str,
    seed: int,
    trials: int,
    space: PEFTSearchSpace,
    evaluate: Callable[[dict], np.ndarray],
    context: tuple,
    system: MetaPEFTSystem | None,
    warm: list[dict],
    registry: str | None,
    source_studies: list[optuna.Study],
    num_layers: int,
    meta_options: dict[str, Any] | None = None,
    objectives: tuple[str, ...] = schema.DEFAULT_OBJECTIVES,
) -> np.ndarray:
    """Run one sampler on one task; returns the (trials, 3) targets in trial order."""
    sampler = make_sampler(
        name, seed, context, system, registry, source_studies, meta_options, space
    )
    study = peft_study(sampler, "target", context, objectives=objectives)
    if name == "warmstart":
        for params in warm:
            study.enqueue_trial(params)
    return optimise(study, trials, space, evaluate, num_layers)


def peft_study(
    sampler: optuna.samplers.BaseSampler,
    task: str,
    context: tuple,
    storage: optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    objectives: tuple[str, ...] = schema.DEFAULT_OBJECTIVES,
) -> optuna.Study:
    """A study of ``objectives`` labelled as a PEFT study of ``task`` (what
    ``PEFTObjective`` writes), so that its trials read back as experience."""
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        load_if_exists=True,
        directions=schema.directions(objectives),
        sampler=sampler,
    )
    schema.name_study_objectives(study, objectives)
    chars, info = context
    study.set_user_attr(schema.STUDY_TASK, {"name": task, "characteristics": chars.to_dict()})
    study.set_user_attr(schema.STUDY_MODEL, info)
    return study


def optimise(
    study: optuna.Study,
    trials: int,
    space: PEFTSearchSpace,
    evaluate: Callable[[dict], np.ndarray | None],
    num_layers: int,
) -> np.ndarray:
    """Ask and tell ``trials`` trials answered by ``evaluate`` (None: the trial failed);
    returns the (trials, 3) targets in trial order, NaN for failed trials."""
    objectives = schema.study_objectives(study)
    outcomes = []
    for _ in range(trials):
        trial = study.ask()
        space.suggest(trial, num_layers=num_layers)
        target = evaluate(dict(trial.params))
        if target is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            outcomes.append(np.full(len(objectives), np.nan))
        else:
            study.tell(trial, objective_values(target, objectives))
            outcomes.append(target)
    return np.array(outcomes)


# --- fast mode ------------------------------------------------------------------------------
def fast_mode(args: argparse.Namespace) -> None:
    samplers = list(args.samplers)
    if args.optunahub_registry and "meta_learn_tpe" not in samplers:
        samplers.append("meta_learn_tpe")
    if "meta_learn_tpe" in samplers and not args.optunahub_registry:
        sys.exit(
            "--samplers meta_learn_tpe needs --optunahub-registry PATH, a local copy of "
            "https://github.com/optuna/optunahub-registry"
        )
    groups = oracle_tasks(args.experience)
    space = recorded_space([e for g in groups.values() for e in g])
    known = {g[0].task_name for g in groups.values()}
    if unknown := sorted(set(args.tasks or ()) - known):
        sys.exit(
            f"--tasks: no task {', '.join(unknown)} with enough trials in {args.experience}; "
            f"choose from {', '.join(sorted(known))}"
        )
    check_gp(args)
    rows, quality = [], {}
    pool = reference_pool(space)
    for key in sorted(groups):
        experiences = groups[key]
        task = experiences[0].task_name
        if args.tasks and task not in args.tasks:
            continue
        started = time.time()
        oracle, scale, best_hv, oracle_targets = task_problem(experiences, space, pool)
        quality[task] = oracle.fit_quality
        others = {k: v for k, v in groups.items() if k != key}
        # Only MetaPEFTSampler reads the meta-model (a minute's fit per task).
        system = fitted_system(others, space, args.system_cache) if "meta" in samplers else None
        context = (experiences[0].task_characteristics, experiences[0].model_info)
        warm = warm_start_configs(experiences[0], others)
        sources = (
            source_studies(others, oracle.objectives, space) if args.optunahub_registry else []
        )
        layers = experiences[0].model_info.get("num_layers", 30)
        best = best_quality(oracle_targets, oracle.objectives)
        for name in samplers:
            for seed in seeds(args):
                outcomes = run_sampler(
                    name,
                    seed,
                    args.trials,
                    space,
                    oracle,
                    context,
                    system,
                    warm,
                    args.optunahub_registry,
                    sources,
                    layers,
                    meta_options(args),
                    oracle.objectives,
                )
                label = sampler_label(name, args)
                run = run_columns(task, label, seed, outcomes, best, oracle.objectives)
                for n, value in enumerate(hv_curve(scale(outcomes), best_hv), start=1):
                    rows.append({**run, "trials": n, "normalised_hv": value})
        print(
            f"{task}: done in {time.time() - started:.0f} s; oracle fit "
            + ", ".join(f"{k} {v:.2f}" for k, v in oracle.fit_quality.items()),
            flush=True,
        )
    write_outputs(rows, quality, args, [sampler_label(s, args) for s in samplers])


def check_gp(args: argparse.Namespace) -> None:
    """Exit with one line if a sampler of the run is GPSampler and torch is missing: before
    a minute's meta-model fit or a model load, not after."""
    gp = "--samplers gp" if "gp" in args.samplers else None
    if args.fallback == "gp" and "meta" in args.samplers:
        gp = "--fallback gp"
    if gp:
        try:
            require_torch(gp, "GPSampler", f"or leave {gp} out")
        except ConfigError as exc:
            sys.exit(str(exc))


def sampler_label(name: str, args: argparse.Namespace) -> str:
    """The name a run is stored and reported under: MetaPEFTSampler handing over to
    GPSampler (``--fallback gp``) is a sampler of its own, ``meta_gp``."""
    return "meta_gp" if name == "meta" and args.fallback == "gp" else name


def seeds(args: argparse.Namespace) -> range:
    """The seeds to run; ``--first-seed`` lets a later run add seeds to an earlier one's CSV."""
    return range(args.first_seed, args.first_seed + args.seeds)


def meta_options(args: argparse.Namespace) -> dict[str, Any]:
    """MetaPEFTSampler's settings from the command line (for ablations)."""
    return {
        "explore_every": args.explore_every or None,
        "n_warm_start": args.warm_start,
        "fallback": args.fallback,
    }


def fitted_system(
    others: dict[str, list[PEFTExperience]], space: PEFTSearchSpace, cache: str | None
) -> MetaPEFTSystem:
    """The meta-model trained on the other tasks; with ``cache``, saved there by the identity
    of its experience and loaded again by later runs (e.g. ablations of the sampler)."""
    buffer = ExperienceBuffer(e for g in others.values() for e in g)
    if cache is None:
        return MetaPEFTSystem(space).fit(buffer)
    # The key covers the space too: the same experience encodes differently in another.
    stamp = "\n".join([*sorted(e.uid for e in buffer), repr(space.distributions())])
    key = hashlib.sha1(stamp.encode()).hexdigest()[:16]
    path = Path(cache) / key
    if (path / "meta_model.json").is_file():
        return MetaPEFTSystem.load(path, space)
    system = MetaPEFTSystem(space).fit(buffer)
    system.save(path)
    return system


def source_studies(
    others: dict[str, list[PEFTExperience]], objectives: tuple[str, ...], space: PEFTSearchSpace
) -> list[optuna.Study]:
    """The source tasks that optimise the target's ``objectives``, as in-memory Optuna
    studies (for OptunaHub's meta_learn_tpe, which compares values across studies)."""
    distributions = space.distributions()
    studies = []
    for group in others.values():
        if task_objectives(group) != objectives:
            continue
        study = optuna.create_study(directions=schema.directions(objectives))
        for e in group:
            values = [e.performance_metrics[o] for o in objectives]
            study.add_trial(
                optuna.trial.create_trial(
                    params=e.hyperparameters,
                    distributions={k: distributions[k] for k in e.hyperparameters},
                    values=values,
                )
            )
        studies.append(study)
    return studies


# --- live mode -------------------------------------------------------------------------------
def build_running() -> bool:
    """True while the meta-dataset build runs: live timings are objectives, and it would
    share the CPU with them."""
    pattern = "benchmarks/build_meta_dataset.py"
    return subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.DEVNULL).returncode == 0


def live_mode(args: argparse.Namespace) -> None:
    """Real fine-tunes, one Optuna study per (task, sampler, seed) in ``--storage``.

    Resumable: a rerun continues every study to ``--trials``; a trial left running by a
    killed run is failed and its configuration run again, as is one failed with
    ``build_meta_dataset.py --storage URL --contended TRIAL_ID`` (its timing distorted).
    Trials go one at a time to the study with the fewest, so a run stopped early leaves
    every study about as far. Between trials it waits while ``benchmarks/pause_build.sh``
    holds the machine, as the build does.
    """
    if build_running():
        sys.exit(
            "live mode: the meta-dataset build is running and would share the CPU with the "
            "timed fine-tunes; stop it first (touch studies/.build_hold, wait for "
            "studies/.build_idle, then stop benchmarks/build_meta_dataset.py)"
        )
    check_gp(args)
    with storage_lock(args.storage, "live run"):
        run_live(args)


def run_live(args: argparse.Namespace) -> None:
    """The body of :func:`live_mode`, run while it holds the storage."""
    from metapeft_optuna.models import load_model
    from metapeft_optuna.tasks import TaskCharacteristics, load_task
    from metapeft_optuna.training import fine_tune
    from metapeft_optuna.training.prepared import PreparedTask

    Path(IDLE).unlink(missing_ok=True)  # left by a run killed while held
    loaded = load_model(args.model)
    num_layers = len(loaded.model.layers)
    live = {load_task(spec).name.split("@")[0] for spec in args.tasks}
    experience = ExperienceBuffer.from_storages(args.experience)
    space = recorded_space(list(experience))  # live trials search what the sources did
    groups = experience.by_task()
    sources = {k: g for k, g in groups.items() if g[0].task_name.split("@")[0] not in live}
    print(f"meta-model: {len(sources)} of the {len(groups)} tasks in {args.experience}")
    system = fitted_system(sources, space, args.system_cache)
    samplers = [s for s in args.samplers if s in ("meta", "tpe")]
    # Every live study shares --storage: learning from it would hand a meta study the other
    # seeds' trials on its own task, so the meta-model sees the sources only.
    options = {**meta_options(args), "learn_from_storage": False}
    studies: dict[tuple[str, str, int], optuna.Study] = {}
    evaluators, objectives_of = {}, {}
    for task_name in args.tasks:
        task = load_task(task_name)
        chars = TaskCharacteristics.from_task(task, loaded.tokenizer)
        prepared = PreparedTask.prepare(task, loaded.tokenizer, LIVE_BUDGET)
        context = (chars, loaded.info.to_dict())
        objectives = objectives_of[task_name] = schema.default_objectives(task.quality_objective)

        def evaluate(params: dict, task=task, prepared=prepared, objectives=objectives):
            method, hp = space.to_hyperparameters(params, num_layers, task.description)
            try:
                result = fine_tune(loaded, prepared, method, hp, LIVE_BUDGET)
            except metapeft_optuna.TrialFailedError:
                return None
            return target_vector(dict(zip(objectives, result.values(objectives))), objectives)

        evaluators[task_name] = evaluate
        for seed in seeds(args):
            for name in samplers:
                sampler = make_sampler(name, seed, context, system, None, [], options, space)
                key = (task_name, sampler_label(name, args), seed)
                studies[key] = peft_study(
                    sampler,
                    task_name,
                    context,
                    storage=args.storage,
                    study_name="live-{}-{}-{}".format(*key),
                    objectives=objectives,
                )
                mark_interrupted(studies[key])
    while todo := {
        k: n for k, s in studies.items() if (n := len(counted(s))) < args.trials
    }:  # each study's storage read once per trial
        key = min(todo, key=todo.get)
        study = studies[key]
        enqueue_redo(study)  # a killed run's trial, or one failed with --contended
        wait_while_held()
        started = time.time()
        optimise(study, 1, space, evaluators[key[0]], num_layers)
        trial = study.trials[-1]
        print(
            f"[{time.strftime('%H:%M:%S')}] {' '.join(map(str, key))} #{trial.number} "
            f"{trial.params.get('method')}: {trial.state.name} {trial.values} "
            f"({time.time() - started:.0f} s; {len(todo) - 1} studies short)",
            flush=True,
        )
    rows: list[dict] = []
    for task_name in args.tasks:
        objectives = objectives_of[task_name]
        outcomes = {
            (name, seed): stored_targets(study, args.trials, objectives)
            for (task, name, seed), study in studies.items()
            if task == task_name
        }
        curves = normalised_curves(outcomes, objectives)
        if curves is None:
            print(f"{task_name}: every trial failed; left out of the comparison", flush=True)
            continue
        best = best_quality(np.vstack(list(outcomes.values())), objectives)
        for (name, seed), curve in curves.items():
            run = run_columns(task_name, name, seed, outcomes[name, seed], best, objectives)
            rows += [{**run, "trials": n, "normalised_hv": v} for n, v in enumerate(curve, 1)]
    write_outputs(rows, {}, args, [sampler_label(s, args) for s in samplers])


def normalised_curves(
    outcomes: dict[Any, np.ndarray], objectives: tuple[str, ...]
) -> dict[Any, list[float]] | None:
    """Each run's normalised hypervolume after 1..n trials, against the best front of
    all the runs' trials together (live runs know no better one); None when no trial
    of any run has values."""
    everything = np.vstack(list(outcomes.values()))
    if not np.isfinite(everything).all(axis=1).any():
        return None
    scale = TaskScale(everything, objectives)
    points = scale(everything)
    best_hv = hypervolume(points[pareto_mask(points)], REFERENCE)
    return {key: hv_curve(scale(runs), best_hv) for key, runs in outcomes.items()}


def stored_targets(study: optuna.Study, trials: int, objectives: tuple[str, ...]) -> np.ndarray:
    """The (trials, objectives) targets of a live study's first ``trials`` counted trials
    in trial order, NaN for failed ones."""
    return trial_targets(counted(study)[:trials], objectives)


def trial_targets(
    trials: list[optuna.trial.FrozenTrial], objectives: tuple[str, ...]
) -> np.ndarray:
    """``(len(trials), objectives)`` targets (``target_vector``), NaN for trials without
    values (failed or pruned)."""
    return np.array(
        [
            target_vector(dict(zip(objectives, t.values)), objectives)
            if t.state == optuna.trial.TrialState.COMPLETE
            else np.full(len(objectives), np.nan)
            for t in trials
        ]
    ).reshape(len(trials), len(objectives))


# --- outputs --------------------------------------------------------------------------------
def write_outputs(
    rows: list[dict], quality: dict, args: argparse.Namespace, samplers: list[str]
) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / f"compare_{args.mode}"
    # Summarised as written, so a merge of the CSV reproduces the table exactly.
    rows = [{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    write_csv(Path(f"{prefix}.csv"), rows)
    if quality:
        atomic_write_text(Path(f"{prefix}_oracle_fit.json"), json.dumps(quality, indent=1))
    summary = summarise(rows, samplers, args.trials)
    atomic_write_text(Path(f"{prefix}.md"), summary)
    print("\n" + summary)
    plot(rows, samplers, f"{prefix}.png")


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV with a header, written to a temporary name and renamed."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def merge(args: argparse.Namespace) -> None:
    """Rewrite the CSV, table and plot from earlier runs' CSVs (and their oracle fits).

    A row of a later CSV replaces the row of an earlier one with the same task, sampler,
    seed and trial count, so a sampler re-measured after a change replaces its old runs
    instead of being counted twice.
    """
    rows: dict[tuple, dict] = {}
    quality: dict = {}
    for name in args.summarise:
        with open(name, newline="") as fh:
            for row in csv.DictReader(fh):
                if "first_accuracy" in row:  # written before tasks had their own objective
                    row["quality"] = "accuracy"
                    row["first_quality"] = row.pop("first_accuracy")
                    row["best_known_quality"] = row.pop("best_known_accuracy")
                row = {
                    **row,
                    "seed": int(row["seed"]),
                    "trials": int(row["trials"]),
                    **{k: float(row[k]) for k in FLOAT_COLUMNS},
                }
                rows[row["task"], row["sampler"], row["seed"], row["trials"]] = row
        fit = Path(name.replace(".csv", "_oracle_fit.json"))
        if fit.is_file():
            quality.update(json.loads(fit.read_text()))
    merged = list(rows.values())
    samplers = list(dict.fromkeys(r["sampler"] for r in merged))
    args.trials = max(r["trials"] for r in merged)
    write_outputs(merged, quality, args, samplers)


def summarise(rows: list[dict], samplers: list[str], trials: int) -> str:
    by = defaultdict(list)
    for r in rows:
        by[(r["sampler"], r["trials"], r["task"], r["seed"])].append(r["normalised_hv"])
    budgets = [b for b in (1, 3, 5, 10, 15, 20, 30, 50) if b <= trials]
    lines = [
        "| sampler | " + " | ".join(f"HV@{b}" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    table: dict[str, dict[int, float]] = {}
    for s in samplers:
        cells = []
        table[s] = {}
        for b in budgets:
            values = [v[0] for (name, n, _, _), v in by.items() if name == s and n == b]
            mean, std = float(np.mean(values)), float(np.std(values))
            table[s][b] = mean
            cells.append(f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {LABELS[s]} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    for reference in ("meta", "meta_gp"):
        if reference in table and len(table) > 1:
            text += "\n\n" + paired_table(by, samplers, budgets, reference)
    # The targets of the issue, stated as measured.
    if "meta" in table:
        # Tasks whose quality never varies (every trial at chance or at 0) have no
        # "best" to reach; they are left out of this share.
        spread = defaultdict(set)
        for r in rows:
            if r["trials"] == 1 and np.isfinite(r["first_quality"]):
                spread[r["task"]].add(round(r["first_quality"], 6))
        first = [
            r
            for r in rows
            if r["sampler"] == "meta" and r["trials"] == 1 and len(spread[r["task"]]) > 1
        ]
        share = np.mean([near_best(r) for r in first]) if first else float("nan")
        notes = [
            f"\n\nFirst recommended trial reaches >= 95% of the best known quality (accuracy, "
            f"or val_loss within 1/0.95 of the lowest) in {share:.0%} of (task, seed) runs on "
            f"the {len({r['task'] for r in first})} tasks whose quality varies."
        ]
        if "tpe" in table and 10 in table["meta"] and trials in table["tpe"]:
            notes.append(
                f"MetaPEFT HV@10 = {table['meta'][10]:.3f} vs TPE HV@{trials} = "
                f"{table['tpe'][trials]:.3f}."
            )
            notes.append(trials_to_match(by, trials))
        if "warmstart" in table:
            wins = [b for b in budgets if table["meta"][b] > table["warmstart"][b]]
            notes.append(
                f"MetaPEFT beats the auto-sklearn-style warm start at budgets {wins} of {budgets}."
            )
        text += "\n".join(notes)
    if "meta_gp" in table and "tpe" in table:
        text += "\n" + trials_to_match(by, trials, "meta_gp")
    return text + "\n"


def paired_table(by: dict, samplers: list[str], budgets: list[int], reference: str) -> str:
    """``reference`` (a MetaPEFT variant) minus each other sampler, paired by task: each
    task's mean over its seeds, then the mean ± standard error over the tasks both ran,
    and how many tasks ``reference`` leads. Tasks, not (task, seed) runs, are the
    independent units: seeds share a task's oracle and meta-model."""
    per_task = defaultdict(list)
    for (sampler, n, task, _), values in by.items():
        per_task[sampler, n, task].append(values[0])
    tasks = sorted({task for (_, _, task, _) in by})
    name = SHORT_LABELS[reference]
    lines = [
        f"| {name} - sampler, paired over tasks (mean ± se; tasks {name} leads) | "
        + " | ".join(f"@{b}" for b in budgets)
        + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    # MetaPEFT against its GP hand-over is one comparison: in the GP hand-over's table.
    for other in (s for s in samplers if s not in (reference, "meta_gp")):
        cells = []
        for b in budgets:
            both = [t for t in tasks if {(reference, b, t), (other, b, t)} <= per_task.keys()]
            d = np.array(
                [np.mean(per_task[reference, b, t]) - np.mean(per_task[other, b, t]) for t in both]
            )
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
            cells.append(f"{d.mean():+.3f} ± {se:.3f} ({int((d > 0).sum())}/{len(d)})")
        lines.append(f"| {LABELS[other]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def near_best(row: dict) -> bool:
    """Whether a run's first trial reached 95% of the task's best known quality."""
    first, best = row["first_quality"], row["best_known_quality"]
    # Accuracies are fractions of a few hundred examples: 0.95 * 20/26 may round above
    # 19/26, hence the tolerance.
    if schema.OBJECTIVE_SPECS[row["quality"]].direction == "maximize":
        return first >= 0.95 * best - 1e-9
    return first <= best / 0.95 + 1e-9


def trials_to_match(by: dict, trials: int, reference: str = "meta") -> str:
    """The first budget at which ``reference``'s (a MetaPEFT variant's) mean normalised
    hypervolume reaches TPE's at ``trials``, and its ratio to ``trials``."""

    def mean(sampler: str, n: int) -> float:
        return float(np.mean([v[0] for (s, k, _, _), v in by.items() if s == sampler and k == n]))

    name = SHORT_LABELS[reference]
    goal = mean("tpe", trials)
    reached = next((n for n in range(1, trials + 1) if mean(reference, n) >= goal), None)
    if reached is None:
        return f"Trials to match: {name} does not reach TPE's HV@{trials} within {trials}."
    return (
        f"Trials to match: {name} reaches TPE's HV@{trials} at trial {reached} "
        f"({reached / trials:.2f} of the trials)."
    )


def plot(rows: list[dict], samplers: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in samplers:
        curves = defaultdict(list)
        for r in rows:
            if r["sampler"] == s:
                curves[r["trials"]].append(r["normalised_hv"])
        xs = sorted(curves)
        mean = np.array([np.mean(curves[x]) for x in xs])
        std = np.array([np.std(curves[x]) for x in xs])
        ax.plot(xs, mean, label=LABELS[s])
        ax.fill_between(xs, mean - std / 2, mean + std / 2, alpha=0.15)
    ax.set_xlabel("trials")
    ax.set_ylabel("normalised hypervolume (1 = best known front)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fast", "live"], default="fast")
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset_v2.jsonl"])
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=list(SAMPLERS),
        choices=[*SAMPLERS, "meta_learn_tpe"],
        help="meta_learn_tpe (added by --optunahub-registry) can run alone, e.g. under Optuna 4",
    )
    parser.add_argument("--tasks", nargs="*", help="target tasks (default: all / required live)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed+seeds-1"
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--storage",
        default="sqlite:///studies/compare_live.db",
        help="live mode: the storage of its studies, one per task, sampler and seed (resumable)",
    )
    parser.add_argument("--optunahub-registry", help="local checkout of the OptunaHub registry")
    parser.add_argument(
        "--explore-every",
        type=int,
        default=1,
        help="MetaPEFTSampler's explore_every (0: never; for the ablation in docs)",
    )
    parser.add_argument("--warm-start", type=int, default=3, help="MetaPEFTSampler's n_warm_start")
    parser.add_argument(
        "--fallback",
        choices=FALLBACKS,
        default="tpe",
        help="MetaPEFTSampler's fallback sampler (default: its own multivariate TPE)",
    )
    parser.add_argument(
        "--system-cache",
        metavar="DIR",
        help="save the leave-one-task-out meta-models here and reuse them in later runs",
    )
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument(
        "--summarise",
        nargs="+",
        metavar="CSV",
        help="only merge these result CSVs (e.g. runs split by --tasks) into one report",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.summarise:
        merge(args)
        return
    if args.mode == "live" and not args.tasks:
        parser.error("--mode live needs --tasks (tasks outside the meta-dataset)")
    (fast_mode if args.mode == "fast" else live_mode)(args)


if __name__ == "__main__":
    main()
