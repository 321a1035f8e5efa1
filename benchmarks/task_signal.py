"""Does every built-in task show learning within the search space? (the learnability bar)

For each built-in task, a study of random configurations (real MLX fine-tunes of
SmolLM2-135M, the task's default objectives, the trial protocol of ``PEFTObjective``:
400 held-out test examples where the task's data allows, the zero-shot baseline measured
once per study on the same test split) is run, and the best trial is compared with the
baseline. A task passes when the best of ``--trials`` random configurations beats the
zero-shot accuracy by at least 0.15, or lowers the zero-shot val_loss by at least 25%.

The steps range is 10-200 on a log scale (the product's default space stops at 30,
which half of the first meta-dataset's tasks never learned in). Trials go round-robin
over tasks and the run resumes where it stopped, so a partial run covers every task,
and its trials can be the first trials of the next meta-dataset (one storage, one study
per task, task and model on the study as for any experience). Run it alone (timings are
objectives) and in the background:

    nohup python benchmarks/task_signal.py > studies/task_signal.log 2>&1 &
    python benchmarks/task_signal.py --report docs/task-signal.md
"""

from __future__ import annotations

import argparse
import math
import time

import metapeft_optuna
from metapeft_optuna import schema
from metapeft_optuna.models import load_model
from metapeft_optuna.tasks import load_task
from metapeft_optuna.tasks.zoo import BUILTIN_TASKS, standard_sizes
from metapeft_optuna.training.objective import PEFTObjective
from metapeft_optuna.training.results import TrainingBudget
from metapeft_optuna.training.search_space import ParamSpec, PEFTSearchSpace, default_specs

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

STORAGE = "sqlite:///studies/task_signal.db"
PREFIX = "signal-"
SIZE = 256
ACCURACY_GAIN = 0.15
LOSS_DROP = 0.25
INTERRUPTED = "interrupted_run"
BUDGET = TrainingBudget(curve_points=4, curve_examples=64, eval_examples=400)


def signal_space() -> PEFTSearchSpace:
    """The default space with steps from 10 to 200 on a log scale."""
    specs = [
        ParamSpec("steps", IntDistribution(10, 200, log=True), s.methods)
        if s.name == "steps"
        else s
        for s in default_specs()
    ]
    return PEFTSearchSpace(specs=specs)


def task_specs() -> list[str]:
    """Every built-in task at ``SIZE`` training examples (or all it has)."""
    return [
        f"{name}@{SIZE}" if SIZE in standard_sizes(name) else name for name in sorted(BUILTIN_TASKS)
    ]


def run(storage: str, tasks: list[str], trials: int, model_spec: str) -> None:
    loaded = load_model(model_spec)
    space = signal_space()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives, studies = {}, {}
    for spec in tasks:
        objectives[spec] = PEFTObjective(spec, model=loaded, search_space=space, budget=BUDGET)
        studies[spec] = optuna.create_study(
            study_name=PREFIX + spec,
            storage=storage,
            load_if_exists=True,
            directions=objectives[spec].directions,
            sampler=optuna.samplers.RandomSampler(seed=sum(map(ord, spec))),
        )
        # A trial left running by an interrupted run is failed and redone.
        for trial in studies[spec].get_trials(states=(TrialState.RUNNING,)):
            studies[spec]._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            studies[spec]._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    for round_ in range(trials):
        for spec in tasks:
            study = studies[spec]
            done = [t for t in study.trials if not t.user_attrs.get(INTERRUPTED)]
            if len(done) > round_:
                continue
            started = time.time()
            study.optimize(objectives[spec], n_trials=1, catch=(Exception,))
            last = study.trials[-1]
            print(
                f"{spec} trial {last.number}: {last.state.name} {last.values} "
                f"({time.time() - started:.0f} s)",
                flush=True,
            )


def task_row(study: optuna.Study) -> dict:
    """Zero-shot and best quality with standard errors, and whether the task passes."""
    names = schema.study_objectives(study)
    quality = schema.quality_objective(names)
    baseline = study.user_attrs.get(schema.STUDY_BASELINE) or {}
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    row = {
        "task": study.study_name.removeprefix(PREFIX),
        "quality": quality,
        "trials": len(complete),
        "failed": sum(
            t.state == TrialState.FAIL and not t.user_attrs.get(INTERRUPTED) for t in study.trials
        ),
        "zero_shot": baseline.get(quality),
        "zero_shot_se": baseline.get(f"{quality}_se"),
    }
    sign = schema.OBJECTIVE_SPECS[quality].sign
    scored = [t for t in complete if math.isfinite(t.values[names.index(quality)])]
    if not scored or row["zero_shot"] is None:
        return {**row, "best": None, "best_se": None, "passes": None}
    best = min(scored, key=lambda t: sign * t.values[names.index(quality)])
    value = best.values[names.index(quality)]
    se = (best.user_attrs.get(schema.TRIAL_METRICS) or {}).get(f"{quality}_se")
    if quality == "accuracy":
        passes = value - row["zero_shot"] >= ACCURACY_GAIN
    else:
        passes = value <= (1 - LOSS_DROP) * row["zero_shot"]
    return {
        **row,
        "best": value,
        "best_se": se,
        "best_method": best.params["method"],
        "passes": passes,
    }


def _pm(value, se) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ± {se:.3f}" if se is not None and math.isfinite(se) else f"{value:.3f}"


def report(storage: str, out: str | None) -> str:
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    rows = [
        task_row(optuna.load_study(study_name=s.study_name, storage=storage))
        for s in sorted(summaries, key=lambda s: s.study_name)
        if s.study_name.startswith(PREFIX)
    ]
    lines = [
        "| task | quality | zero-shot | best trial | method | trials (failed) | passes |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        verdict = {True: "yes", False: "no", None: "-"}[r["passes"]]
        lines.append(
            f"| {r['task']} | {r['quality']} | {_pm(r['zero_shot'], r['zero_shot_se'])} | "
            f"{_pm(r['best'], r['best_se'])} | {r.get('best_method', '-')} | "
            f"{r['trials']} ({r['failed']}) | {verdict} |"
        )
    passed = sum(r["passes"] is True for r in rows)
    lines.append(f"\n{passed} of {len(rows)} tasks pass the bar so far.")
    text = "\n".join(lines) + "\n"
    if out:
        from metapeft_optuna.io import atomic_path

        with atomic_path(out) as tmp, open(tmp, "w") as fh:
            fh.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=STORAGE)
    parser.add_argument("--trials", type=int, default=12, help="random configurations per task")
    parser.add_argument("--tasks", nargs="+", help="task specs (default: every built-in task)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--report", nargs="?", const="", help="print (and write) the table")
    args = parser.parse_args()
    if args.report is not None:
        print(report(args.storage, args.report or None))
        return
    print(f"metapeft-optuna {metapeft_optuna.__version__}; BLAS {metapeft_optuna.BLAS.name}")
    for spec in args.tasks or task_specs():
        load_task(spec)  # a bad name fails before the model loads
    run(args.storage, args.tasks or task_specs(), args.trials, args.model)
    print(report(args.storage, None))


if __name__ == "__main__":
    main()
