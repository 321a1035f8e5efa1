"""``metapeft tune`` and ``metapeft main``: a study, its results table, baseline and plot."""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .. import schema
from ..validation import check_int, check_number, check_writable, require_torch
from ._table import print_table
from .report import TrialPrinter, baseline_line, pareto_rows, save_pareto_plot, wrap
from .resume import Interrupted, StopAtTrials, counted_trials, retry_interrupted, stop_signals
from .workers import run_workers

MAIN_TASK = "language_id@256"  # zero-shot 0.300 ± 0.023: fine-tuning visibly matters
MAIN_STORAGE = "sqlite:///studies/main.db"


def make_sampler(
    name: str,
    objective,
    seed: int | None,
    use_prior: bool,
    experience: Sequence[str] = (),
    fallback: str = "tpe",
):
    import optuna

    from ..samplers import MetaPEFTSampler

    samplers = {
        "meta": lambda: MetaPEFTSampler(
            objective=objective,
            seed=seed,
            use_prior=use_prior,
            experience=experience,
            fallback=fallback,
        ),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
    }
    return samplers[name]()


def parse_objectives(text: str | None) -> tuple[str, ...] | None:
    """``--objectives val_loss,peak_memory_mb`` as checked names (None: the default)."""
    if not text:
        return None
    return schema.check_objectives([t.strip() for t in text.split(",") if t.strip()])


def parse_methods(text: str | None):
    """``--methods lora,dora`` as a search space of those methods (None: every method)."""
    from ..errors import ConfigError
    from ..training import PEFTSearchSpace

    if not text:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    known = PEFTSearchSpace().methods
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(
            f"--methods {text!r}: unknown method(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}."
        )
    return PEFTSearchSpace(methods=names)


def output_dir(storage: str, chosen: str | None = None) -> Path:
    """Where a study's files go: ``chosen`` (``--out-dir``), else beside a file storage
    (SQLite or journal file), else the current directory."""
    if chosen:
        return Path(chosen)
    storage = str(storage)
    if storage.startswith("sqlite:///"):
        return Path(storage[len("sqlite:///") :]).parent
    if "://" not in storage:
        return Path(storage).parent
    return Path.cwd()


def artifact_store(path: Path):
    """A file-system artifact store at ``path`` (created if missing), written atomically."""
    from ..training.dashboard import AtomicFileSystemArtifactStore

    path.mkdir(parents=True, exist_ok=True)
    return AtomicFileSystemArtifactStore(str(path))


def check_options(args: argparse.Namespace) -> None:
    """The options of ``metapeft tune`` that need nothing loaded: numbers, names, the
    folders and sources it reads or writes.

    Raises:
        ConfigError: Naming the option, its value and what it must be.
    """
    from ..errors import ConfigError

    owner = "metapeft tune"
    check_int(owner, "--trials", args.trials)
    check_number(owner, "--timeout", args.timeout, 0, low_open=True, optional=True)
    check_number(owner, "--deadline", args.deadline, 0, low_open=True, optional=True)
    check_int(owner, "--eval-examples", args.eval_examples)
    check_int(owner, "--workers", args.workers)
    check_number(owner, "--memory-limit-mb", args.memory_limit_mb, 0, low_open=True, optional=True)
    if args.study_name is not None and not args.study_name.strip():
        raise ConfigError("--study-name is empty; give a name, or leave the option out.")
    if args.adapters_dir:
        check_writable("--adapters-dir", args.adapters_dir, folder=True)
    if args.fallback != "tpe" and args.sampler != "meta":
        raise ConfigError(
            f"--fallback {args.fallback}: only MetaPEFTSampler hands over (--sampler meta); "
            f"leave --fallback out with --sampler {args.sampler}."
        )
    if args.sampler == "gp":
        require_torch(f"{owner} --sampler gp", "GPSampler", "or choose another --sampler")
    if args.fallback == "gp":
        require_torch(f"{owner} --fallback gp", "GPSampler", "or leave --fallback gp out")
    for source in args.experience or ():
        if "://" not in source and not Path(source).is_file():
            raise ConfigError(
                f"--experience {source}: no such file; give storages (sqlite:///PATH, "
                "postgresql://..., a journal file) or .jsonl exports that exist."
            )


def check_plot_path(path: Path) -> None:
    """Raise :class:`ConfigError` unless matplotlib can write ``path``'s image type there."""
    from matplotlib.backend_bases import FigureCanvasBase

    from ..errors import ConfigError

    types = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in types:
        raise ConfigError(
            f"--plot {path}: unknown image type {path.suffix or '(none)'!r}; end the name "
            f"with one of {', '.join('.' + t for t in sorted(types))}."
        )
    check_writable("--plot", path, folder=False)


def cmd_tune(args: argparse.Namespace) -> int:
    import optuna

    from ..meta.storages import check_storage, open_storage
    from ..models.loader import resolve_model
    from ..tasks import load_task
    from ..training import PEFTObjective, TrainingBudget

    # Every check that needs no model comes first, and nothing is created until the task,
    # model spec, options and storage are known to be good.
    check_options(args)
    check_storage(args.storage)
    space = parse_methods(args.methods)
    objectives = parse_objectives(args.objectives)
    task = load_task(args.task)
    resolve_model(args.model)
    budget = TrainingBudget(
        eval_examples=args.eval_examples, memory_limit_mb=args.memory_limit_mb, seed=args.seed or 0
    )
    out = output_dir(args.storage, args.out_dir)
    artifacts = None if args.no_artifacts else Path(args.artifacts or out / "artifacts")
    check_writable("--out-dir", out, folder=True)
    if artifacts:
        check_writable("--artifacts", artifacts, folder=True)
    plot = Path(args.plot) if args.plot else None
    if plot:
        check_plot_path(plot)
    objective = PEFTObjective(
        task,
        model=args.model,
        budget=budget,
        search_space=space,
        adapters_dir=args.adapters_dir,
        objectives=objectives,
    )
    # A GP hand-over is a search of its own: it must not resume the TPE one's study.
    sampler = args.sampler + ("-gp" if args.fallback == "gp" else "")
    study_name = args.study_name or f"{task.name}-{args.model}-{sampler}"
    # Heartbeats fail dead workers' trials; a study of other objectives is refused here.
    storage = open_storage(args.storage, heartbeat=True)
    if study_name in optuna.get_all_study_names(storage):
        objective.check_objectives(optuna.load_study(study_name=study_name, storage=storage))
    if args.workers > 1:
        code = run_workers(args.argv, args.workers)
        if study_name not in optuna.get_all_study_names(storage):
            return code  # every worker failed before the study began; each said why
        study = optuna.load_study(study_name=study_name, storage=storage)
    else:
        study, code = optimize(args, objective, storage, study_name, artifacts)
    if args.as_worker is None:
        # Named by the study's id: a study name is the user's text, never a path.
        plot = plot or out / f"study-{study._study_id}-pareto.png"
        show_study(args, study, objective.objectives, plot, artifacts)
    return code


def optimize(args: argparse.Namespace, objective, storage, study_name: str, artifacts):
    """Run this process's trials of the study; returns the study and the exit code."""
    import optuna

    from ..pruners import MetaPEFTPruner

    task = objective.task
    print(f"loading {args.model} and measuring {task.name} ...", flush=True)
    chars = objective.characteristics
    print(
        f"task {task.name}: {chars.task_type}, {chars.domain}, {chars.dataset_size} "
        f"examples, ~{chars.sequence_length} tokens each\nobjectives: "
        + ", ".join(f"{o} ({schema.OBJECTIVE_SPECS[o].direction})" for o in objective.objectives)
    )
    # Workers of one --workers run must not replay each other's draws.
    seed = args.seed if args.as_worker is None else args.seed * 1000 + args.as_worker
    sampler = make_sampler(
        args.sampler, objective, seed, not args.no_prior, args.experience or (), args.fallback
    )
    pruner = (
        MetaPEFTPruner(use_prior=not args.no_prior)
        if args.pruner == "meta"
        else optuna.pruners.NopPruner()
    )
    if artifacts:
        objective.artifact_store = artifact_store(artifacts)
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
    # workers stop together at it (StopAtTrials counts the trials they are running).
    objective.check_study(study)
    with warnings.catch_warnings():  # experimental API
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # dead workers' trials, before counting
    objectives = objective.objectives
    remaining = args.trials - counted_trials(study)
    code = 0
    if remaining > 0:
        if args.deadline is not None:  # counted, like --timeout, from here
            objective.deadline = time.time() + args.deadline
        try:
            with stop_signals():
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=args.timeout,
                    show_progress_bar=not args.quiet,
                    callbacks=[
                        StopAtTrials(args.trials),
                        TrialPrinter(objectives),
                    ],
                )
        except Interrupted as stop:
            code = 128 + stop.signum
            retry_interrupted(study)
            print(
                f"\nstopped by {stop}: the running trial is marked failed; run the same "
                "command to resume."
            )
    else:
        print(f"study {study_name!r} has its {args.trials} trials already; showing it.")
    return study, code


def show_study(args: argparse.Namespace, study, objectives, plot: Path, artifacts) -> None:
    """The recommendation, the front with the zero-shot baseline, the Pareto plot (written
    to ``plot``) and the dashboard command."""
    study_name = study.study_name
    recommendation = study.user_attrs.get(schema.STUDY_RECOMMENDATION)
    if recommendation:
        print(
            f"\nmeta-model recommendation: {recommendation['method']} "
            f"(confidence {recommendation['confidence']:.2f})"
        )
        print("\n".join(wrap(recommendation["reasoning"], indent="  ")))
    done = [t for t in study.trials if t.values and all(math.isfinite(v) for v in t.values)]
    directions = ", ".join(
        f"{o} {'up' if schema.OBJECTIVE_SPECS[o].direction == 'maximize' else 'down'}"
        for o in objectives
    )
    print(f"\n{len(done)} finished trials in study {study_name!r}.")
    print(f"Pareto front ({directions}):")
    if line := baseline_line(study, objectives):
        print(line)
    print()
    rows, settings = pareto_rows(study, objectives) if done else ([], [])
    print_table(rows, list(rows[0]) if rows else ["trial"])
    if settings:
        print("\nsettings:")
        for text in settings:
            print("\n".join(wrap("  " + text, indent="    ")))
    quality = schema.quality_objective(objectives)
    if done and quality and set(objectives) & set(schema.COST_OBJECTIVES):
        print(f"\nPareto plot:\n  {save_pareto_plot(study, plot, objectives)}")
    dashboard = f"optuna-dashboard {args.storage}"
    if artifacts:
        dashboard += f" \\\n      --artifact-dir {artifacts}"
    print(f"\nInspect the study (notes, adapters, curves) in the dashboard:\n  {dashboard}")


def cmd_main(args: argparse.Namespace) -> int:
    """The README's main job: a real MetaPEFTSampler study with SmolLM2-135M."""
    args.task, args.model, args.sampler, args.pruner = MAIN_TASK, "smollm2-135m", "meta", "meta"
    args.objectives = args.methods = None
    args.fallback = "tpe"
    return cmd_tune(args)
