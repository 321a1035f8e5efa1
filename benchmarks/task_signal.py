"""Does every built-in task show learning within the search space? (the learnability bar)

The bar: the best of a task's first 12 random configurations (real MLX fine-tunes of
SmolLM2-135M with the trial protocol of ``PEFTObjective``: 400 held-out test examples
where the task's data allows, the zero-shot baseline measured once per study on the same
test split) beats the zero-shot accuracy by at least 0.15 or, for free-form answers
(val_loss the quality objective), lowers the zero-shot val_loss by at least 25%. Both
metrics are reported (accuracy is not scored on free-form answers).

These are the first trials of the meta-dataset v2: ``benchmarks/build_meta_dataset.py``
runs them first (tasks whose verdict is open first) in ``studies/meta_dataset_v2.db``,
and this script reports on them, or runs the bar's configurations only:

    nohup python benchmarks/task_signal.py >> studies/meta_dataset_v2.log 2>&1 &
    python benchmarks/task_signal.py --report docs/task-signal.md
"""

from __future__ import annotations

import argparse
import math

import metapeft_optuna
from metapeft_optuna import schema
from metapeft_optuna.atomic import atomic_path
from metapeft_optuna.tasks import load_task

import optuna
from build_meta_dataset import (
    ACCURACY_GAIN,
    BAR,
    LOSS_DROP,
    PREFIX,
    STORAGE,
    best_metric,
    build,
    counted,
    learns,
    task_specs,
)
from optuna.trial import TrialState

HEADER = f"""# Task signal: does every built-in task learn within the search space?

Written by `python benchmarks/task_signal.py --report docs/task-signal.md` from the
first {BAR} configurations of each task in `studies/meta_dataset_v2.db` (run by
`benchmarks/build_meta_dataset.py`, resumable). Random configurations of the search
space with 10-200 steps (log scale), methods in turn, real SmolLM2-135M fine-tunes, 400
held-out test examples where the task's pool allows; quality ± standard error. A task
passes when its best trial beats the zero-shot accuracy by {ACCURACY_GAIN}, or (free-form
answers) lowers the zero-shot val_loss by {LOSS_DROP:.0%}; the bar is judged after {BAR}
configurations per task, so a "no" with fewer trials is provisional.

"""


def task_row(study: optuna.Study) -> dict:
    """Zero-shot and best accuracy and val_loss (value, standard error, method) over the
    study's first ``BAR`` counted trials, and the bar's verdict."""
    baseline = study.user_attrs.get(schema.STUDY_BASELINE) or {}
    done = counted(study)
    trials = done[:BAR]
    row = {
        "task": study.study_name.removeprefix(PREFIX),
        "quality": schema.quality_objective(schema.study_objectives(study)),
        "trials": sum(t.state == TrialState.COMPLETE for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "passes": learns(study, done=done),
    }
    for metric in schema.QUALITY_METRICS:
        zero = (baseline.get(metric), baseline.get(f"{metric}_se"))
        row[metric] = (*zero, *best_metric(trials, metric))
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
        with atomic_path(out) as tmp, open(tmp, "w") as fh:
            fh.write(HEADER + text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=STORAGE)
    parser.add_argument("--tasks", nargs="+", help="task specs (default: every built-in task)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--report", nargs="?", const="", help="print (and write) the table")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.report is not None:
        print(report(args.storage, args.report or None))
        return
    print(f"metapeft-optuna {metapeft_optuna.__version__}; BLAS {metapeft_optuna.BLAS.name}")
    tasks = args.tasks or task_specs()
    for spec in tasks:
        load_task(spec)  # a bad name fails before the model loads
    build(args.storage, tasks, BAR, args.model)
    print(report(args.storage, None))


if __name__ == "__main__":
    main()
