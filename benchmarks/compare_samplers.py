"""Compare MetaPEFTSampler with other samplers, the way the HPO literature does.

Leave-one-task-out: for every target task, the meta-model and the warm-start baseline see
only the other tasks of the meta-dataset. Samplers: MetaPEFTSampler, TPE
(multi-objective, multivariate), NSGA-II, GPSampler, Random, and an auto-sklearn-style
warm start (the best configurations of the nearest tasks by meta-features enqueued first,
then TPE); with ``--optunahub-registry PATH`` also OptunaHub's ``meta_learn_tpe``.

Metric: hypervolume of (accuracy, log peak memory, log training time) after 1..N trials,
objectives normalised per task, fixed reference point, divided by the hypervolume of the
task's best known front (1.0 = found it); mean and spread over seeds.

Modes:
- ``fast``: trials are answered by per-task surrogate models (random forests) fitted on the
  meta-dataset; their cross-validated fit quality is reported.
- ``live``: real fine-tunes of SmolLM2-135M on tasks outside the meta-dataset.

    python benchmarks/compare_samplers.py --mode fast [--seeds 10] [--trials 50]
    python benchmarks/compare_samplers.py --mode live --tasks compare_numbers@256 \\
        words_to_number@256 --seeds 2 --trials 15

Writes a CSV, PNG plots and a markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna import schema
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, PEFTExperience
from metapeft_optuna.meta.acquisition import hypervolume, pareto_mask
from metapeft_optuna.meta.features import Standardizer, context_vector, target_vector
from metapeft_optuna.samplers import MetaPEFTSampler
from metapeft_optuna.training import PEFTSearchSpace

import numpy as np
import optuna

SAMPLERS = ("meta", "tpe", "nsga2", "gp", "random", "warmstart")
LABELS = {
    "meta": "MetaPEFTSampler",
    "tpe": "TPE",
    "nsga2": "NSGA-II",
    "gp": "GPSampler",
    "random": "Random",
    "warmstart": "auto-sklearn warm start + TPE",
    "meta_learn_tpe": "OptunaHub meta_learn_tpe",
}
REFERENCE = np.full(3, 1.1)
FLOAT_COLUMNS = ("normalised_hv", "first_accuracy", "best_known_accuracy")


# --- normalisation and the metric -------------------------------------------------------
class TaskScale:
    """Per-task normalisation of (1 - accuracy, log MB, log s) to about [0, 1]."""

    def __init__(self, targets: np.ndarray):
        minimised = to_minimised(targets)
        self.low = minimised.min(axis=0)
        self.high = minimised.max(axis=0)
        self.span = np.where(self.high - self.low > 1e-9, self.high - self.low, 1.0)

    def __call__(self, targets: np.ndarray) -> np.ndarray:
        return (to_minimised(targets) - self.low) / self.span


def to_minimised(targets: np.ndarray) -> np.ndarray:
    targets = np.atleast_2d(targets)
    return np.column_stack([1 - targets[:, 0], targets[:, 1], targets[:, 2]])


def hv_curve(points: np.ndarray, best_hv: float) -> list[float]:
    """Normalised hypervolume of the first 1..n points."""
    out = []
    for n in range(1, len(points) + 1):
        out.append(hypervolume(points[:n], REFERENCE) / best_hv)
    return out


def reference_pool(space: PEFTSearchSpace, size: int = 3000) -> list[dict[str, Any]]:
    """The random configurations (same for every task) over which, with the task's own
    recorded ones, its surrogates' best front and best known accuracy are taken."""
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(size)]


# --- the fast-mode oracle ----------------------------------------------------------------
class TaskOracle:
    """Random-forest surrogates of one task's objectives, fitted on its recorded trials."""

    def __init__(self, experiences: list[PEFTExperience], space: PEFTSearchSpace, seed: int = 0):
        from sklearn.ensemble import RandomForestRegressor

        self.space = space
        x = np.stack([space.encode(e.hyperparameters) for e in experiences])
        y = np.stack(
            [target_vector(e.performance_metrics, schema.DEFAULT_OBJECTIVES) for e in experiences]
        )
        self.models = [
            RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed).fit(
                x, y[:, j]
            )
            for j in range(3)
        ]
        self.fit_quality = self._cross_validated(x, y, seed)

    @staticmethod
    def _cross_validated(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
        from scipy.stats import spearmanr
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.model_selection import KFold, cross_val_predict

        quality = {}
        for j, name in enumerate(("accuracy", "log_memory", "log_time")):
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
        [target_vector(e.performance_metrics, schema.DEFAULT_OBJECTIVES) for e in experiences]
    )
    oracle_targets = oracle.predict(pool + [e.hyperparameters for e in experiences])
    scale = TaskScale(np.vstack([targets, oracle_targets]))
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
    """auto-sklearn style: the best configurations (by accuracy) of the nearest tasks."""
    configs = []
    for group in nearest_tasks(target, others):
        for e in sorted(group, key=lambda e: -e.accuracy)[:2]:
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
):
    if name == "meta":
        chars, info = context
        options = dict(meta_options or {})
        if options.pop("fallback", "tpe") == "gp":
            # Same 6-trial start-up as the default TPE fallback; the warm start counts.
            gp = optuna.samplers.GPSampler(seed=seed, n_startup_trials=6)
            options["independent_sampler"] = gp
        return MetaPEFTSampler(
            task_characteristics=chars,
            model_info=info,
            system=system,
            use_prior=False,
            seed=seed,
            **options,
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
) -> np.ndarray:
    """Run one sampler on one task; returns the (trials, 3) targets in trial order."""
    sampler = make_sampler(name, seed, context, system, registry, source_studies, meta_options)
    study = peft_study(sampler, "target", context)
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
) -> optuna.Study:
    """A study labelled as a PEFT study of ``task`` (what ``PEFTObjective`` writes), so
    that its trials read back as experience."""
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        directions=schema.directions(schema.DEFAULT_OBJECTIVES),
        sampler=sampler,
    )
    chars, info = context
    study.set_user_attr(schema.STUDY_TASK, {"name": task, "characteristics": chars.to_dict()})
    study.set_user_attr(schema.STUDY_MODEL, info)
    return study


def optimise(
    study: optuna.Study,
    trials: int,
    space: PEFTSearchSpace,
    evaluate: Callable[[dict], np.ndarray],
    num_layers: int,
) -> np.ndarray:
    """Ask and tell ``trials`` trials answered by ``evaluate``; returns the (trials, 3)
    targets in trial order."""
    outcomes = []
    for _ in range(trials):
        trial = study.ask()
        space.suggest(trial, num_layers=num_layers)
        params = {k: v for k, v in trial.params.items()}
        target = evaluate(params)
        outcomes.append(target)
        study.tell(trial, [float(target[0]), float(np.exp(target[1])), float(np.exp(target[2]))])
    return np.array(outcomes)


# --- fast mode ------------------------------------------------------------------------------
def fast_mode(args: argparse.Namespace) -> None:
    buffer = ExperienceBuffer.from_storages(args.experience)
    groups = buffer.by_task()
    space = PEFTSearchSpace()
    samplers = list(args.samplers) + (["meta_learn_tpe"] if args.optunahub_registry else [])
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
        system = fitted_system(others, space, args.system_cache)
        context = (experiences[0].task_characteristics, experiences[0].model_info)
        warm = warm_start_configs(experiences[0], others)
        sources = source_studies(others) if args.optunahub_registry else []
        layers = experiences[0].model_info.get("num_layers", 30)
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
                )
                curve = hv_curve(scale(outcomes), best_hv)
                first_accuracy = float(outcomes[0, 0])
                for n, value in enumerate(curve, start=1):
                    rows.append(
                        {
                            "task": task,
                            "sampler": name,
                            "seed": seed,
                            "trials": n,
                            "normalised_hv": value,
                            "first_accuracy": first_accuracy,
                            "best_known_accuracy": float(oracle_targets[:, 0].max()),
                        }
                    )
        print(
            f"{task}: done in {time.time() - started:.0f} s; oracle fit "
            + ", ".join(f"{k} {v:.2f}" for k, v in oracle.fit_quality.items()),
            flush=True,
        )
    write_outputs(rows, quality, args, samplers)


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
    key = hashlib.sha1("\n".join(sorted(e.uid for e in buffer)).encode()).hexdigest()[:16]
    path = Path(cache) / key
    if (path / "meta_model.json").is_file():
        return MetaPEFTSystem.load(path, space)
    system = MetaPEFTSystem(space).fit(buffer)
    system.save(path)
    return system


def source_studies(others: dict[str, list[PEFTExperience]]) -> list[optuna.Study]:
    """The source tasks as in-memory Optuna studies (for OptunaHub's meta_learn_tpe)."""
    space = PEFTSearchSpace()
    distributions = space.distributions()
    studies = []
    for group in others.values():
        study = optuna.create_study(directions=schema.directions(schema.DEFAULT_OBJECTIVES))
        for e in group:
            values = [e.performance_metrics[o] for o in schema.DEFAULT_OBJECTIVES]
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
def live_mode(args: argparse.Namespace) -> None:
    from metapeft_optuna.meta.prior import load_prior
    from metapeft_optuna.models import load_model
    from metapeft_optuna.tasks import TaskCharacteristics, load_task
    from metapeft_optuna.training import TrainingBudget, fine_tune
    from metapeft_optuna.training.prepared import PreparedTask

    space = PEFTSearchSpace()
    loaded = load_model(args.model)
    system = load_prior(space)
    if system is None:
        sys.exit("live mode needs the shipped prior (run `metapeft prior train`).")
    budget = TrainingBudget(curve_points=4, curve_examples=24, eval_examples=50)
    rows, quality = [], {}
    samplers = [s for s in args.samplers if s in ("meta", "tpe")]
    for task_name in args.tasks:
        task = load_task(task_name)
        chars = TaskCharacteristics.from_task(task, loaded.tokenizer)
        prepared = PreparedTask.prepare(task, loaded.tokenizer, budget)
        context = (chars, loaded.info.to_dict())
        results: dict[str, list[np.ndarray]] = defaultdict(list)

        def evaluate(params: dict, task=task, prepared=prepared) -> np.ndarray:
            method, hp = space.to_hyperparameters(
                params, len(loaded.model.layers), task.description
            )
            try:
                result = fine_tune(loaded, prepared, method, hp, budget)
            except metapeft_optuna.TrialFailedError:
                return np.array([0.0, math.log(1e4), math.log(1e4)])
            values = dict(zip(schema.DEFAULT_OBJECTIVES, result.values(schema.DEFAULT_OBJECTIVES)))
            return target_vector(values, schema.DEFAULT_OBJECTIVES)

        for name in samplers:
            for seed in seeds(args):
                started = time.time()
                outcomes = run_sampler(
                    name,
                    seed,
                    args.trials,
                    space,
                    evaluate,
                    context,
                    system,
                    [],
                    None,
                    [],
                    len(loaded.model.layers),
                    meta_options(args),
                )
                results[name].append(outcomes)
                print(
                    f"{task_name} {name} seed {seed}: {time.time() - started:.0f} s, best "
                    f"accuracy {outcomes[:, 0].max():.3f}",
                    flush=True,
                )
        everything = np.vstack([o for runs in results.values() for o in runs])
        scale = TaskScale(everything)
        points = scale(everything)
        best_hv = hypervolume(points[pareto_mask(points)], REFERENCE)
        for name, runs in results.items():
            for seed, outcomes in zip(seeds(args), runs):
                for n, value in enumerate(hv_curve(scale(outcomes), best_hv), start=1):
                    rows.append(
                        {
                            "task": task_name,
                            "sampler": name,
                            "seed": seed,
                            "trials": n,
                            "normalised_hv": value,
                            "first_accuracy": float(outcomes[0, 0]),
                            "best_known_accuracy": float(everything[:, 0].max()),
                        }
                    )
    write_outputs(rows, quality, args, samplers)


# --- outputs --------------------------------------------------------------------------------
def write_outputs(
    rows: list[dict], quality: dict, args: argparse.Namespace, samplers: list[str]
) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / f"compare_{args.mode}"
    # Summarised as written, so a merge of the CSV reproduces the table exactly.
    rows = [{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    with open(f"{prefix}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if quality:
        Path(f"{prefix}_oracle_fit.json").write_text(json.dumps(quality, indent=1))
    summary = summarise(rows, samplers, args.trials)
    Path(f"{prefix}.md").write_text(summary)
    print("\n" + summary)
    plot(rows, samplers, f"{prefix}.png")


def merge(args: argparse.Namespace) -> None:
    """Rewrite the CSV, table and plot from earlier runs' CSVs (and their oracle fits)."""
    rows: list[dict] = []
    quality: dict = {}
    for name in args.summarise:
        with open(name, newline="") as fh:
            for row in csv.DictReader(fh):
                rows.append(
                    {
                        **row,
                        "seed": int(row["seed"]),
                        "trials": int(row["trials"]),
                        **{k: float(row[k]) for k in FLOAT_COLUMNS},
                    }
                )
        fit = Path(name.replace(".csv", "_oracle_fit.json"))
        if fit.is_file():
            quality.update(json.loads(fit.read_text()))
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    args.trials = max(r["trials"] for r in rows)
    write_outputs(rows, quality, args, samplers)


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
    # The targets of the issue, stated as measured.
    if "meta" in table:
        # Tasks whose accuracy never varies (every trial at chance or at 0) have no
        # "best accuracy" to reach; they are left out of this share.
        spread = defaultdict(set)
        for r in rows:
            if r["trials"] == 1:
                spread[r["task"]].add(round(r["first_accuracy"], 6))
        first = [
            r
            for r in rows
            if r["sampler"] == "meta" and r["trials"] == 1 and len(spread[r["task"]]) > 1
        ]
        # Accuracies are fractions of a few dozen examples: 19/26 is 95% of 20/26 even
        # where floating point rounds 0.95 * 20/26 above 19/26.
        share = (
            np.mean([r["first_accuracy"] >= 0.95 * r["best_known_accuracy"] - 1e-9 for r in first])
            if first
            else float("nan")
        )
        notes = [
            f"\n\nFirst recommended trial reaches >= 95% of the best known accuracy in "
            f"{share:.0%} of (task, seed) runs on the {len({r['task'] for r in first})} "
            "tasks whose accuracy varies."
        ]
        if "tpe" in table and 10 in table["meta"] and trials in table["tpe"]:
            notes.append(
                f"MetaPEFT HV@10 = {table['meta'][10]:.3f} vs TPE HV@{trials} = "
                f"{table['tpe'][trials]:.3f}."
            )
        if "warmstart" in table:
            wins = [b for b in budgets if table["meta"][b] > table["warmstart"][b]]
            notes.append(
                f"MetaPEFT beats the auto-sklearn-style warm start at budgets {wins} of {budgets}."
            )
        text += "\n".join(notes)
    return text + "\n"


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
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset.jsonl"])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--tasks", nargs="*", help="target tasks (default: all / required live)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed+seeds-1"
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--model", default="smollm2-135m")
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
        choices=["tpe", "gp"],
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
