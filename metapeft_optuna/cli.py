"""The ``metapeft`` command: tune a PEFT configuration, inspect tasks, train the prior."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import metapeft_optuna

from . import schema
from .errors import MetaLearningError

MAIN_TASK = "language_id@256"  # zero-shot 0.300 ± 0.023: fine-tuning visibly matters
MAIN_STORAGE = "sqlite:///studies/main.db"


def _print_table(rows: list[dict[str, object]], columns: Sequence[str]) -> None:
    if not rows:
        print("(nothing to show)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def cmd_info(args: argparse.Namespace) -> int:
    import mlx.core as mx

    from .meta.prior import prior_path

    blas = metapeft_optuna.BLAS
    print(f"metapeft-optuna {metapeft_optuna.__version__}")
    print(f"mlx {mx.__version__} on {mx.default_device()}")
    print(f"BLAS: {blas.name} ({blas.path or blas.reason})")
    print(f"prior: {prior_path() or 'none (samplers start cold)'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import NAMED_MODELS

    _print_table(
        [{"name": k, "description": v} for k, v in NAMED_MODELS.items()], ["name", "description"]
    )
    print("\nAlso accepted: a local mlx-lm/Hugging Face model directory or a llama .gguf file.")
    return 0


def cmd_tasks_list(args: argparse.Namespace) -> int:
    from .models import load_model
    from .tasks import TaskCharacteristics, list_tasks, load_task
    from .tasks.zoo import BUILTIN_TASKS

    _, tokenizer, _ = load_model(args.model)
    rows = []
    for name in list_tasks(with_sizes=args.sizes):
        task = load_task(name)
        chars = TaskCharacteristics.from_task(task, tokenizer)
        entry = BUILTIN_TASKS[name.split("@")[0]]
        rows.append(
            {
                "task": name,
                "domain": chars.domain,
                "type": chars.task_type,
                "size": chars.dataset_size,
                "seq_len": chars.sequence_length,
                "vocab": chars.vocabulary_size,
                "classes": chars.num_classes or "-",
                "test": len(task.splits().test),
                "quality": task.quality_objective,
                "complexity": f"{chars.complexity_score:.2f}",
                "source": entry.source,
                "description": entry.description,
            }
        )
    _print_table(
        rows,
        [
            "task",
            "domain",
            "type",
            "size",
            "seq_len",
            "vocab",
            "classes",
            "test",
            "quality",
            "complexity",
            "source",
            "description",
        ],
    )
    return 0


def make_sampler(name: str, objective, seed: int | None, use_prior: bool):
    import optuna

    from .samplers import MetaPEFTSampler

    samplers = {
        "meta": lambda: MetaPEFTSampler(objective=objective, seed=seed, use_prior=use_prior),
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

    from .pruners import MetaPEFTPruner
    from .tasks import load_task
    from .training import PEFTObjective, TrainingBudget

    if args.storage.startswith("sqlite:///"):
        Path(args.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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
    sampler = make_sampler(args.sampler, objective, args.seed, not args.no_prior)
    pruner = (
        MetaPEFTPruner(use_prior=not args.no_prior)
        if args.pruner == "meta"
        else optuna.pruners.NopPruner()
    )
    study_name = args.study_name or f"{task.name}-{objective.model_name}-{args.sampler}"
    study = optuna.create_study(
        study_name=study_name,
        storage=args.storage,
        directions=objective.directions,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(
        objective, n_trials=args.trials, timeout=args.timeout, show_progress_bar=not args.quiet
    )
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
    _print_table(rows, list(rows[0]) if rows else ["trial"])
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


def cmd_recommend(args: argparse.Namespace) -> int:
    from .meta.prior import load_prior
    from .models import load_model
    from .tasks import TaskCharacteristics, load_task

    _, tokenizer, info = load_model(args.model)
    task = load_task(args.task)
    chars = TaskCharacteristics.from_task(task, tokenizer)
    system = load_prior()
    if system is None:
        from .meta import MetaPEFTSystem

        system = MetaPEFTSystem()
    objectives = schema.default_objectives(task.quality_objective)
    recommendation = system.recommend(chars, info.to_dict(), objectives=objectives)
    print(f"method: {recommendation.method.value} (confidence {recommendation.confidence:.2f})")
    print(f"hyperparameters: {recommendation.hyperparameters}")
    print(f"expected: {recommendation.expected_performance}")
    print(f"why: {recommendation.reasoning}")
    return 0


def cmd_prior_train(args: argparse.Namespace) -> int:
    from .meta import ExperienceBuffer, MetaPEFTSystem
    from .meta.prior import META_DATASET, REPOSITORY_PRIOR

    buffer = ExperienceBuffer.from_storages(args.experience or [str(META_DATASET)])
    print(
        f"training on {len(buffer.complete())} experiences from {len(buffer.by_task())} tasks ...",
        flush=True,
    )
    system = MetaPEFTSystem(seed=args.seed).fit(buffer)
    out = args.out or REPOSITORY_PRIOR
    system.save(out)
    print(f"saved the prior to {out}")
    return 0


def cmd_prior_show(args: argparse.Namespace) -> int:
    from .meta.prior import load_prior, prior_path

    system = load_prior()
    if system is None:
        print(
            "no prior: MetaPEFTSampler starts cold (set METAPEFT_PRIOR or run "
            "`metapeft prior train`)."
        )
        return 0
    print(
        f"prior at {prior_path()}: {len(system.experience_buffer)} experiences, "
        f"{len(system.task_summaries_)} tasks"
    )
    _print_table(
        [
            {
                "task": s["name"],
                "trials": s["trials"],
                "best method": s["best_method"],
                "best quality": f"{max(s['best_quality'].values()):.3f}",
            }
            for s in system.task_summaries_
        ],
        ["task", "trials", "best method", "best quality"],
    )
    return 0


def cmd_experience_export(args: argparse.Namespace) -> int:
    from .meta import ExperienceBuffer

    buffer = ExperienceBuffer.from_storages(args.storage)
    buffer.export_jsonl(args.out)
    print(f"wrote {len(buffer)} experiences from {len(buffer.task_names())} tasks to {args.out}")
    return 0


def _add_tune_options(parser: argparse.ArgumentParser, *, main: bool) -> None:
    if not main:
        parser.add_argument("--task", required=True, help="built-in task or .jsonl/.csv file")
        parser.add_argument("--model", default="smollm2-135m")
        parser.add_argument(
            "--sampler", default="meta", choices=["meta", "tpe", "nsga2", "random", "gp"]
        )
        parser.add_argument("--pruner", default="meta", choices=["meta", "none"])
        parser.add_argument(
            "--objectives",
            help="comma-separated objective names from "
            f"{', '.join(schema.METRICS)} (default: the task's quality objective, accuracy "
            "or val_loss for free-form answers and plain text, then peak_memory_mb,"
            "train_seconds)",
        )
    parser.add_argument("--trials", type=int, default=12 if main else 20)
    parser.add_argument(
        "--timeout",
        type=float,
        default=330 if main else None,
        help="stop starting new trials after this many seconds",
    )
    parser.add_argument("--storage", default=MAIN_STORAGE)
    parser.add_argument("--study-name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--eval-examples",
        type=int,
        default=400,
        help="held-out test examples per trial (400: standard error <= 0.025 on accuracy)",
    )
    parser.add_argument("--memory-limit-mb", type=float)
    parser.add_argument("--adapters-dir", help="save every trial's adapter under this folder")
    parser.add_argument("--plot", help="Pareto plot PNG (default: studies/<study>-pareto.png)")
    parser.add_argument(
        "--no-prior",
        action="store_true",
        help="start the meta sampler cold; prune on this study's curves alone",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metapeft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="versions, BLAS and prior").set_defaults(func=cmd_info)
    commands.add_parser("models", help="list the named models").set_defaults(func=cmd_models)

    tasks = commands.add_parser("tasks", help="built-in tasks")
    tasks_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    listing = tasks_commands.add_parser("list", help="list built-in tasks and characteristics")
    listing.add_argument("--sizes", action="store_true", help="list every size variant")
    listing.add_argument(
        "--model", default="tiny", help="model whose tokenizer measures the tasks (default: tiny)"
    )
    listing.set_defaults(func=cmd_tasks_list)

    tune = commands.add_parser("tune", help="run a PEFT study (real fine-tunes)")
    _add_tune_options(tune, main=False)
    tune.set_defaults(func=cmd_tune)
    main = commands.add_parser("main", help=f"the README's main job ({MAIN_TASK}, SmolLM2)")
    _add_tune_options(main, main=True)
    main.set_defaults(func=cmd_main)

    recommend = commands.add_parser("recommend", help="the prior's recommendation for a task")
    recommend.add_argument("--task", required=True)
    recommend.add_argument("--model", default="smollm2-135m")
    recommend.set_defaults(func=cmd_recommend)

    prior = commands.add_parser("prior", help="the shipped meta-model")
    prior_commands = prior.add_subparsers(dest="prior_command", required=True)
    train = prior_commands.add_parser("train", help="train the prior on experience")
    train.add_argument(
        "--experience",
        nargs="+",
        help="storage URLs or JSON Lines exports (default: the shipped meta-dataset)",
    )
    train.add_argument("--out", help="folder to write (default: the shipped prior)")
    train.add_argument("--seed", type=int, default=0, help="seed of the networks' training")
    train.set_defaults(func=cmd_prior_train)
    prior_commands.add_parser("show", help="what the prior knows").set_defaults(func=cmd_prior_show)

    experience = commands.add_parser("experience", help="experience files")
    experience_commands = experience.add_subparsers(dest="experience_command", required=True)
    export = experience_commands.add_parser("export", help="storages -> JSON Lines")
    export.add_argument("--storage", nargs="+", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(func=cmd_experience_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MetaLearningError as exc:
        print(f"metapeft: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
