"""Does every built-in task show learning within the search space? (the learnability bar)

For each built-in task, a study of random configurations (real MLX fine-tunes of
SmolLM2-135M, the task's default objectives, the trial protocol of ``PEFTObjective``:
400 held-out test examples where the task's data allows, the zero-shot baseline measured
once per study on the same test split) is run, and the best trial is compared with the
baseline. A task passes when the best of ``--trials`` random configurations beats the
zero-shot accuracy by at least 0.15 or, for free-form answers (val_loss the quality
objective), lowers the zero-shot val_loss by at least 25%. Both are reported (accuracy
is not scored on free-form answers).

The steps range is 10-200 on a log scale (the product's default space stops at 30,
which half of the first meta-dataset's tasks never learned in). Methods take turns per
task (two configurations each in twelve), every other parameter is drawn at random.
Each next trial goes to the task whose verdict is most open (tasks that do not pass
yet, fewest trials first: one passing configuration settles a task) and the run resumes
where it stopped; its trials are meant as the first trials of the next meta-dataset
(one storage, one study per task, task and model on the study as for any experience).
Timings are objectives: run it alone in the background, and anything heavy beside it
through ``benchmarks/pause_build.sh COMMAND`` (it holds the run between two trials, as
for ``build_meta_dataset.py``):

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
from metapeft_optuna.training.results import TrainingBudget
from metapeft_optuna.training.search_space import ParamSpec, PEFTSearchSpace, default_specs

import optuna
from build_meta_dataset import (
    REDO,
    LoggedObjective,
    counted,
    mark_interrupted,
    pending_redo,
    wait_while_held,
)
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

STORAGE = "sqlite:///studies/task_signal.db"
PREFIX = "signal-"
SIZE = 256
ACCURACY_GAIN = 0.15
LOSS_DROP = 0.25
HEADER = """# Task signal: does every built-in task learn within the search space?

Written by `python benchmarks/task_signal.py --report docs/task-signal.md` from
`studies/task_signal.db` (run: `python benchmarks/task_signal.py`, resumable; see its
docstring). Random configurations of the search space with 10-200 steps (log scale),
real SmolLM2-135M fine-tunes, 400 held-out test examples where the task's pool allows;
quality ± standard error. A task passes when its best trial beats the zero-shot
accuracy by 0.15, or (free-form answers) lowers the zero-shot val_loss by 25%; the bar
is judged after 12 configurations per task, so a "no" with fewer trials is provisional.

"""
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
    """Every built-in task at ``SIZE`` training examples, or its largest size (the whole
    training pool: for breast_cancer that keeps the 400-example test set)."""
    return [
        f"{name}@{SIZE if SIZE in sizes else max(sizes)}"
        for name in sorted(BUILTIN_TASKS)
        if (sizes := standard_sizes(name))
    ]


def _seed(spec: str) -> int:
    return sum(map(ord, spec)) * 1000


def _next_task(studies: dict[str, optuna.Study], trials: int) -> str | None:
    """The task whose verdict is most open: tasks that do not pass yet come first (their
    verdict needs all ``trials`` configurations; a pass is settled by one), then fewest
    trials so far. None when every task has ``trials``."""
    open_ = [
        (task_row(study)["passes"] is True, counted(study), spec)
        for spec, study in studies.items()
        if counted(study) < trials
    ]
    return min(open_)[2] if open_ else None


def run(storage: str, tasks: list[str], trials: int, model_spec: str) -> None:
    loaded = load_model(model_spec)
    space = signal_space()
    methods = space.methods
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives, studies = {}, {}
    existing = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    for spec in tasks:
        objectives[spec] = LoggedObjective(spec, model=loaded, search_space=space, budget=BUDGET)
        if existing.get(PREFIX + spec) == 0:  # an empty study is recreated as it is now
            optuna.delete_study(study_name=PREFIX + spec, storage=storage)
        studies[spec] = optuna.create_study(
            study_name=PREFIX + spec,
            storage=storage,
            load_if_exists=True,
            directions=objectives[spec].directions,
        )
        mark_interrupted(studies[spec])
    while (spec := _next_task(studies, trials)) is not None:
        study = studies[spec]
        done = counted(study)
        if redo := pending_redo(study):
            study.enqueue_trial(redo[0].params)
        else:
            # Methods in turn from a per-task offset (each gets 2 of 12), the rest drawn
            # at random, seeded by task and trial number so a resumed run draws anew.
            study.enqueue_trial({"method": methods[(_seed(spec) // 1000 + done) % len(methods)]})
        study.sampler = optuna.samplers.RandomSampler(seed=_seed(spec) + len(study.trials))
        wait_while_held()
        started = time.time()
        study.optimize(objectives[spec], n_trials=1, catch=(Exception,))
        last = study.trials[-1]
        print(
            f"[{time.strftime('%H:%M:%S')}] {spec} #{last.number} {last.params.get('method')}: "
            f"{last.state.name} {last.values or last.user_attrs.get(schema.TRIAL_FAIL_REASON)} "
            f"({time.time() - started:.0f} s)",
            flush=True,
        )


def _best(trials: list, metric: str) -> tuple[float | None, float | None, str | None]:
    """The best value of ``metric`` over ``trials`` (from each trial's recorded test
    metrics), its standard error and the trial's method."""
    sign = schema.OBJECTIVE_SPECS[metric].sign
    scored = [
        (m[metric], m.get(f"{metric}_se"), t.params["method"])
        for t in trials
        if (m := t.user_attrs.get(schema.TRIAL_METRICS) or {}).get(metric) is not None
        and math.isfinite(m[metric])
    ]
    return min(scored, key=lambda r: sign * r[0]) if scored else (None, None, None)


def task_row(study: optuna.Study) -> dict:
    """Zero-shot and best accuracy and val_loss with standard errors, and whether the
    task passes on its quality objective: an accuracy gain of ``ACCURACY_GAIN``, or a
    val_loss drop of ``LOSS_DROP`` for free-form answers. The loss alone says little on
    a label task: learning the answer format drops it far while accuracy stays at
    chance."""
    baseline = study.user_attrs.get(schema.STUDY_BASELINE) or {}
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    row = {
        "task": study.study_name.removeprefix(PREFIX),
        "quality": schema.quality_objective(schema.study_objectives(study)),
        "trials": len(complete),
        "failed": sum(
            t.state == TrialState.FAIL and t.user_attrs.get(schema.TRIAL_FAIL_REASON) not in REDO
            for t in study.trials
        ),
        "passes": None,
    }
    for metric in schema.QUALITY_METRICS:
        best, se, method = _best(complete, metric)
        row[metric] = (baseline.get(metric), baseline.get(f"{metric}_se"), best, se, method)
    zero, _, best, _, _ = row[row["quality"]]
    if zero is not None and best is not None:
        if row["quality"] == "accuracy":
            row["passes"] = best - zero >= ACCURACY_GAIN
        else:
            row["passes"] = best <= (1 - LOSS_DROP) * zero
    return row


def _pm(value, se) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ± {se:.3f}" if se is not None and math.isfinite(se) else f"{value:.3f}"


def report(storage: str, out: str | None) -> str:
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    builtin = set(task_specs())  # a task removed from the zoo keeps its trials, not its row
    rows = [
        task_row(optuna.load_study(study_name=s.study_name, storage=storage))
        for s in sorted(summaries, key=lambda s: s.study_name)
        if s.study_name.removeprefix(PREFIX) in builtin and s.n_trials
    ]
    lines = [
        "| task | objective | accuracy: zero-shot | best (method) | val_loss: zero-shot "
        "| best (method) | trials (failed) | passes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = {True: "yes", False: "no", None: "-"}[r["passes"]]
        cells = []
        for metric in schema.QUALITY_METRICS:
            zero, zero_se, best, se, method = r[metric]
            cells += [_pm(zero, zero_se), f"{_pm(best, se)} ({method or '-'})"]
        lines.append(
            f"| {r['task']} | {r['quality']} | {' | '.join(cells)} | "
            f"{r['trials']} ({r['failed']}) | {verdict} |"
        )
    passed = sum(r["passes"] is True for r in rows)
    lines.append(f"\n{passed} of {len(rows)} tasks pass the bar so far.")
    text = "\n".join(lines) + "\n"
    if out:
        text = HEADER + text
        from metapeft_optuna.atomic import atomic_path

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
