"""``metapeft tune`` and ``metapeft main``: a study, its results table, baseline and plot."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from .. import schema
from ._table import print_table

MAIN_TASK = "language_id@256"  # zero-shot 0.300 ± 0.023: fine-tuning visibly matters
MAIN_STORAGE = "sqlite:///studies/main.db"


def make_sampler(
    name: str, objective, seed: int | None, use_prior: bool, experience: Sequence[str] = ()
):
    import optuna

    from ..samplers import MetaPEFTSampler

    samplers = {
        "meta": lambda: MetaPEFTSampler(
            objective=objective, seed=seed, use_prior=use_prior, experience=experience
        ),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
    }
    return samplers[name]()


def _with_se(value: float, se: float | None, digits: int = 3) -> str:
    if se is None or not math.isfinite(se):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def quality_text(metrics: dict, name: str) -> str:
    """``"0.812 ± 0.020"`` for a quality metric with its standard error (val_loss also
    shows perplexity)."""
    if metrics.get(name) is None:
        return "-"
    text = _with_se(metrics[name], metrics.get(f"{name}_se"))
    if name == "val_loss" and metrics.get("perplexity") is not None:
        text += f" (ppl {metrics['perplexity']:.2f})"
    return text


def pareto_rows(study, objectives: Sequence[str]) -> list[dict[str, object]]:
    """The study's Pareto front as table rows, best quality first: values read by name,
    quality with its standard error, each trial's phase (warm start, hand-over, ...)."""
    quality = schema.quality_objective(objectives)
    order = schema.OBJECTIVE_SPECS[quality or objectives[0]]
    key = objectives.index(order.name)
    rows = []
    for trial in sorted(study.best_trials, key=lambda t: order.sign * t.values[key]):
        values = schema.metrics_by_name(objectives, trial.values)
        measured = {**(trial.user_attrs.get(schema.TRIAL_METRICS) or {}), **values}
        hp = trial.user_attrs.get(schema.TRIAL_HYPERPARAMETERS, {})
        settings = {k: v for k, v in hp.items() if k not in ("init_text",)}
        row: dict[str, object] = {
            "trial": trial.number,
            "phase": (trial.user_attrs.get(schema.TRIAL_PREDICTION) or {}).get("phase", "-"),
            "method": trial.params.get("method"),
        }
        for name in objectives:
            if schema.OBJECTIVE_SPECS[name].quality:
                row[name] = quality_text(measured, name)
            elif name == "peak_memory_mb":
                row["peak MB"] = f"{values[name]:.0f}"
            else:
                row["train s"] = f"{values[name]:.1f}"
        row["settings"] = ", ".join(f"{k}={_short(v)}" for k, v in settings.items())
        rows.append(row)
    return rows


def baseline_line(study, objectives: Sequence[str]) -> str | None:
    """The zero-shot baseline of the study's quality objective, as one line."""
    baseline = study.user_attrs.get(schema.STUDY_BASELINE)
    quality = schema.quality_objective(objectives)
    if not baseline or quality is None or baseline.get(quality) is None:
        return None
    return (
        f"zero-shot baseline (untuned model, {baseline.get('test_examples', '?')} test "
        f"examples): {quality} {quality_text(baseline, quality)}"
    )


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def save_pareto_plot(study, path: Path, objectives: Sequence[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import optuna
    from optuna.visualization.matplotlib import plot_pareto_front

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = plot_pareto_front(study, target_names=list(objectives))
    axes.figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def parse_objectives(text: str | None) -> tuple[str, ...] | None:
    """``--objectives val_loss,peak_memory_mb`` as checked names (None: the default)."""
    if not text:
        return None
    return schema.check_objectives([t.strip() for t in text.split(",") if t.strip()])


def cmd_tune(args: argparse.Namespace) -> int:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from ..meta.storages import open_storage
    from ..pruners import MetaPEFTPruner
    from ..tasks import load_task
    from ..training import PEFTObjective, TrainingBudget

    storage = open_storage(args.storage)  # a bad storage fails before the model loads
    task = load_task(args.task)
    budget = TrainingBudget(
        eval_examples=args.eval_examples, memory_limit_mb=args.memory_limit_mb, seed=args.seed or 0
    )
    objective = PEFTObjective(
        task,
        model=args.model,
        budget=budget,
        adapters_dir=args.adapters_dir,
        objectives=parse_objectives(args.objectives),
    )
    print(f"loading {args.model} and measuring {task.name} ...", flush=True)
    chars = objective.characteristics
    print(
        f"task {task.name}: {chars.task_type}, {chars.domain}, {chars.dataset_size} "
        f"examples, ~{chars.sequence_length} tokens each; objectives: "
        + ", ".join(f"{o} ({schema.OBJECTIVE_SPECS[o].direction})" for o in objective.objectives)
    )
    sampler = make_sampler(
        args.sampler, objective, args.seed, not args.no_prior, args.experience or ()
    )
    pruner = (
        MetaPEFTPruner(use_prior=not args.no_prior)
        if args.pruner == "meta"
        else optuna.pruners.NopPruner()
    )
    study_name = args.study_name or f"{task.name}-{objective.model_name}-{args.sampler}"
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=objective.directions,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # --trials is the study's total, so a resumed run adds what is missing and parallel
    # workers stop together (each may finish the trial it is running beyond it).
    objective.check_study(study)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    remaining = args.trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=args.timeout,
            show_progress_bar=not args.quiet,
            callbacks=[MaxTrialsCallback(args.trials, states=finished)],
        )
    else:
        print(f"study {study_name!r} has its {args.trials} trials already; showing it.")
    recommendation = study.user_attrs.get(schema.STUDY_RECOMMENDATION)
    if recommendation:
        print(
            f"\nmeta-model recommendation: {recommendation['method']} "
            f"(confidence {recommendation['confidence']:.2f})\n  {recommendation['reasoning']}"
        )
    objectives = objective.objectives
    finished = [t for t in study.trials if t.values and all(math.isfinite(v) for v in t.values)]
    directions = ", ".join(
        f"{o} {'up' if schema.OBJECTIVE_SPECS[o].direction == 'maximize' else 'down'}"
        for o in objectives
    )
    print(
        f"\n{len(finished)} finished trials in study {study_name!r}; Pareto front ({directions}):"
    )
    if line := baseline_line(study, objectives):
        print(line)
    print()
    rows = pareto_rows(study, objectives) if finished else []
    print_table(rows, list(rows[0]) if rows else ["trial"])
    if finished and len(objectives) in (2, 3):  # Optuna plots 2-D and 3-D fronts
        path = Path(args.plot or f"studies/{study_name}-pareto.png")
        plot = save_pareto_plot(study, path, objectives)
        print(f"\nPareto plot: {plot}")
    print(f"\nInspect the study:  optuna-dashboard {args.storage}")
    return 0


def cmd_main(args: argparse.Namespace) -> int:
    """The README's main job: a real MetaPEFTSampler study with SmolLM2-135M."""
    args.task, args.model, args.sampler, args.pruner = MAIN_TASK, "smollm2-135m", "meta", "meta"
    args.objectives = None
    return cmd_tune(args)
