"""Build the PEFT meta-dataset: real MLX fine-tunes of SmolLM2-135M on the built-in tasks.

Protocol (see docs/meta-dataset.md): one Optuna study per task in one storage; every
trial a real fine-tune through ``PEFTObjective`` with the product's search space; the
method is assigned round-robin (enqueued) so every method gets the same share, the other
parameters come from a seeded RandomSampler; one loaded model serves all trials.

The build is resumable: re-running continues each study where it stopped (finished and
failed trials count, a trial interrupted mid-run is marked failed and redone). Trials go
round-robin over tasks, so a partial build covers every task. Run it in the background:

    nohup python benchmarks/build_meta_dataset.py > studies/meta_dataset.log 2>&1 &

and export the result for the repository with ``--export studies/meta_dataset.jsonl``.

Timings are objectives, so other heavy work on the machine must not overlap a trial. Run
such work through ``benchmarks/pause_build.sh COMMAND``: it lets the running trial
finish, holds the build between trials while the command runs, then releases it (no
trial is lost or disturbed). Each trial records the load average at its start.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import metapeft_optuna
from metapeft_optuna import schema
from metapeft_optuna.models import load_model
from metapeft_optuna.training.objective import PEFTObjective
from metapeft_optuna.training.results import TrainingBudget
from metapeft_optuna.training.search_space import PEFTSearchSpace

import optuna
from optuna.trial import TrialState

TASKS = (
    "word_sentiment@512",
    "sentiment_strength@512",
    "emoticon_sentiment",
    "word_sentiment@64",
    "language_id@512",
    "number_words_fr@512",
    "number_to_words@512",
    "roman_numerals@512",
    "iris",
    "breast_cancer@512",
    "diabetes_level",
    "parity@512",
    "sort_digits@512",
)
BUDGET = TrainingBudget(curve_points=4, curve_examples=24, eval_examples=50)
STUDY_PREFIX = "meta-"
HOLD = "studies/.build_hold"  # present: finish the running trial, then wait
IDLE = "studies/.build_idle"  # present while the build waits on HOLD
# Reasons of failed trials whose configuration is redone: a trial stopped by the pauses
# earlier builds used ("paused"), or left running by a killed build.
PAUSED = "build paused during the trial; timing invalid, configuration redone"
REDO = (PAUSED, "interrupted build")


def wait_while_held() -> None:
    """Between trials: wait while ``benchmarks/pause_build.sh`` holds the machine."""
    if not os.path.exists(HOLD):
        return
    Path(IDLE).touch()
    try:
        while os.path.exists(HOLD):
            time.sleep(1)
    finally:
        Path(IDLE).unlink(missing_ok=True)


def study_name(task: str) -> str:
    return STUDY_PREFIX + task


def counted(study: optuna.Study) -> int:
    """Finished trials, not counting the ones that must be redone."""
    done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    return len(
        [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state in done and t.user_attrs.get(schema.TRIAL_FAIL_REASON) not in REDO
        ]
    )


def pending_redo(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials to redo (paused or interrupted) whose configuration no later trial ran."""
    trials = study.get_trials(deepcopy=False)
    redo = []
    for t in trials:
        if t.user_attrs.get(schema.TRIAL_FAIL_REASON) not in REDO:
            continue
        later = [u for u in trials if u.number > t.number and u.params == t.params]
        if not later:
            redo.append(t)
    return redo


def mark_interrupted(study: optuna.Study) -> None:
    """A RUNNING trial left by a killed build is failed, so its slot is redone."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(
            trial._trial_id, schema.TRIAL_FAIL_REASON, "interrupted build"
        )
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


class LoggedObjective(PEFTObjective):
    """Records the machine's load average at the start of each trial."""

    def __call__(self, trial: optuna.Trial):
        trial.set_user_attr("load_average", os.getloadavg()[0])
        return super().__call__(trial)


def build(storage: str, tasks: tuple[str, ...], configs: int, model_spec: str) -> None:
    loaded = load_model(model_spec)
    space = PEFTSearchSpace()
    methods = space.methods
    objectives = {}
    studies = {}
    for task in tasks:
        objectives[task] = LoggedObjective(task, model=loaded, search_space=space, budget=BUDGET)
        studies[task] = optuna.create_study(
            study_name=study_name(task),
            storage=storage,
            load_if_exists=True,
            directions=objectives[task].directions,
            sampler=optuna.samplers.RandomSampler(seed=sum(map(ord, task))),
        )
        mark_interrupted(studies[task])
    Path(IDLE).unlink(missing_ok=True)  # left by a build killed while held
    started = time.time()
    ran = 0
    for round_index in range(configs):
        for task in tasks:
            study = studies[task]
            done = counted(study)
            if done > round_index:
                continue
            redo = pending_redo(study)
            if redo:
                study.enqueue_trial(redo[0].params)
            else:
                study.enqueue_trial({"method": methods[done % len(methods)]})
            wait_while_held()
            t0 = time.time()
            study.optimize(objectives[task], n_trials=1, catch=(Exception,))
            trial = study.trials[-1]
            ran += 1
            values = trial.values or trial.user_attrs.get(schema.TRIAL_FAIL_REASON)
            print(
                f"[{time.strftime('%H:%M:%S')}] {task} #{trial.number} "
                f"{trial.params.get('method')}: {values} ({time.time() - t0:.0f}s; "
                f"{ran} this run, {(time.time() - started) / 3600:.2f} h)",
                flush=True,
            )
    print(f"done: {ran} trials in {(time.time() - started) / 3600:.2f} h", flush=True)


def report(storage: str, tasks: tuple[str, ...]) -> None:
    total_train = total_eval = 0.0
    for task in tasks:
        try:
            study = optuna.load_study(study_name=study_name(task), storage=storage)
        except KeyError:
            print(f"{task}: not started")
            continue
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        train = sum(t.values[2] for t in complete)
        evaluation = sum(t.user_attrs.get(schema.TRIAL_EVAL_SECONDS, 0) for t in complete)
        total_train += train
        total_eval += evaluation
        best = max((t.values[0] for t in complete), default=float("nan"))
        print(
            f"{task:24s} complete {len(complete):3d} failed {len(failed):2d} "
            f"best accuracy {best:.3f} train {train / 60:.1f} min eval {evaluation / 60:.1f} min"
        )
    print(f"total: training {total_train / 3600:.2f} h, evaluation {total_eval / 3600:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="sqlite:///studies/meta_dataset.db")
    parser.add_argument("--configs", type=int, default=40, help="trials per task")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--report", action="store_true", help="print progress and cost only")
    parser.add_argument("--export", help="write the experience as JSON Lines to this path")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tasks = tuple(args.tasks)
    if args.export:
        from metapeft_optuna.meta.experience import ExperienceBuffer

        buffer = ExperienceBuffer.from_storages([args.storage])
        buffer.export_jsonl(args.export)
        print(
            f"exported {len(buffer)} experiences from {len(buffer.task_names())} tasks "
            f"to {args.export}"
        )
        return
    if args.report:
        report(args.storage, tasks)
        return
    print(
        f"metapeft {metapeft_optuna.__version__}, BLAS {metapeft_optuna.BLAS.name}, "
        f"{len(tasks)} tasks x {args.configs} configurations",
        flush=True,
    )
    build(args.storage, tasks, args.configs, args.model)
    report(args.storage, tasks)


if __name__ == "__main__":
    main()
