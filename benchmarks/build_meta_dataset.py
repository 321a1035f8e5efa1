"""Build the PEFT meta-dataset (v2): real MLX fine-tunes of SmolLM2-135M on the built-in tasks.

Protocol (docs/meta-dataset.md): every trial is one ``PEFTObjective`` call with the
task's default objectives and the trial protocol of ``docs/trial-protocol.md`` (400
held-out test examples where the task's data allows, accuracy and val_loss with their
standard errors, a 4-point learning curve on 64 validation examples, the zero-shot
baseline once per study). The search space is the product's (10-200 steps on a log
scale). Methods take turns per task from a per-task offset (each gets 6-7 of 40; a task
whose ``--configs`` left a method under ``MIN_PER_METHOD``, as redone trials can shift
the turns, gets that method's trials after them); every other parameter comes from a
``RandomSampler`` seeded by task and trial number. One storage, one study per task,
one loaded model for all trials.

Order: the learnability bar first (``benchmarks/task_signal.py``): up to ``BAR``
configurations of every task that does not pass yet (one passing configuration settles
a task); then the ``CORE`` tasks, up to ``--configs`` each, fewest first; then the other
passing tasks the same way. A task that fails the bar after ``BAR`` configurations
stops there.

The build is resumable: re-running continues where it stopped (a trial left running by
a killed build is failed and its configuration redone). Timings are objectives, so
nothing heavy may overlap a trial: run such work through ``benchmarks/pause_build.sh
COMMAND``, which lets the running trial finish, holds the build between trials while
the command runs, then releases it. Each trial records the load average at its start.

    nohup python benchmarks/build_meta_dataset.py [--core] >> studies/meta_dataset_v2.log 2>&1 &
    python benchmarks/build_meta_dataset.py --report
    python benchmarks/build_meta_dataset.py --export studies/meta_dataset_v2.jsonl
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import metapeft_optuna
from metapeft_optuna import schema
from metapeft_optuna.models import load_model
from metapeft_optuna.tasks import load_task
from metapeft_optuna.tasks.zoo import BUILTIN_TASKS, standard_sizes
from metapeft_optuna.training.objective import PEFTObjective
from metapeft_optuna.training.results import TrainingBudget
from metapeft_optuna.training.search_space import PEFTSearchSpace, default_specs

import optuna
from optuna.trial import TrialState

STORAGE = "sqlite:///studies/meta_dataset_v2.db"
PREFIX = "v2-"
SIZE = 256  # training examples per task
BAR = 12  # configurations the learnability bar is judged on
ACCURACY_GAIN = 0.15  # the bar: accuracy above zero-shot, or ...
LOSS_DROP = 0.25  # ... val_loss below zero-shot by this fraction (free-form answers)
CONFIGS = 40
MIN_PER_METHOD = 6  # configurations of each method per complete task
BUDGET = TrainingBudget(curve_points=4, curve_examples=64, eval_examples=400)
# Completed first: 16 tasks that make a whole meta-dataset on their own (seven domains,
# six scored by val_loss, both chat tasks). The seven that follow are the costliest per
# trial of the domains that have several, over the first 155 trials: number_words_es/fr
# about 4 min, wine and count_vowels 3, docstring_summary 2.7, ordinal_words, addition 2.
CORE = (
    "breast_cancer", "chat_python_docs", "chat_subdivision_country", "compare_numbers",
    "emoji_name", "iris", "language_id", "language_name", "number_to_words", "parity",
    "reverse_word", "roman_numerals", "sentiment_strength", "sort_digits", "unicode_name",
    "words_to_number",
)  # fmt: skip
HOLD = "studies/.build_hold"  # present: finish the running trial, then wait
IDLE = "studies/.build_idle"  # present while the build waits on HOLD
# Reasons of failed trials whose configuration is redone: a trial stopped by the pauses
# earlier builds used ("paused"), or left running by a killed build.
PAUSED = "build paused during the trial; timing invalid, configuration redone"
# Given with --contended to finished trials that other work ran beside by mistake.
CONTENDED = "other work shared the CPU during the trial; timing invalid, configuration redone"
REDO = (PAUSED, "interrupted build", CONTENDED)


def build_space() -> PEFTSearchSpace:
    """Steps from 10 to 200 on a log scale (the product's space since v2; in v1's 10-30
    half of the first meta-dataset's tasks stayed at chance). Pinned here, so the build
    resumes in the space it began in whatever the product's default becomes."""
    return PEFTSearchSpace(specs=default_specs(steps=(10, 200)))


def recorded_space(experiences) -> PEFTSearchSpace:
    """The space the ``experiences`` were recorded in: v1's (10-30 steps in tens; the
    tests' data) when it holds every configuration, else the build's (v2). Benchmarks fit
    meta-models, oracles and samplers in it, so v1's figures reproduce in v1's space, and
    a sampler confined to 10-30 steps never has to reach v2's longer configurations."""
    for space in (PEFTSearchSpace(specs=default_specs(steps=(10, 30, 10))), build_space()):
        if all(space.contains(e.hyperparameters) for e in experiences):
            return space
    raise SystemExit(
        "the experience holds configurations outside both v1's search space (10-30 steps) "
        "and the meta-dataset build's (benchmarks/build_meta_dataset.py build_space)"
    )


def task_specs() -> list[str]:
    """Every built-in task at ``SIZE`` training examples, or its largest size (the whole
    training pool: for breast_cancer that keeps the 400-example test set)."""
    return [
        f"{name}@{SIZE if SIZE in sizes else max(sizes)}"
        for name in sorted(BUILTIN_TASKS)
        if (sizes := standard_sizes(name))
    ]


def task_seed(spec: str) -> int:
    return sum(map(ord, spec)) * 1000


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


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Finished trials in order, without the ones that must be redone."""
    done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in done and t.user_attrs.get(schema.TRIAL_FAIL_REASON) not in REDO
    ]


def pending_redo(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials to redo (paused or interrupted) whose configuration no later trial ran; one
    stopped before its configuration was drawn has none to redo."""
    trials = study.get_trials(deepcopy=False)
    return [
        t
        for t in trials
        if t.params
        and t.user_attrs.get(schema.TRIAL_FAIL_REASON) in REDO
        and not any(u.number > t.number and u.params == t.params for u in trials)
    ]


def enqueue_redo(study: optuna.Study) -> bool:
    """Queue the configuration of the first trial to redo (:func:`pending_redo`): the
    sampler chose it, only its measurement was lost. True when a trial now waits to run,
    including one queued by a run stopped before it ran (Optuna runs it first)."""
    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return True
    if redo := pending_redo(study):
        study.enqueue_trial(redo[0].params)
        return True
    return False


@contextmanager
def storage_lock(storage: str, run: str) -> Iterator[None]:
    """Held by the one ``run`` (say ``"live run"``, named in another run's exit line)
    that may use ``storage`` from this directory (a relative SQLite path means a file
    here) while the context lasts.

    A second run on the same studies would fail the first one's running trial
    (:func:`mark_interrupted`) and share the CPU with its timed fine-tunes.

    Raises:
        SystemExit: Another run holds it.
    """
    key = hashlib.sha1(f"{Path.cwd()}\n{storage}".encode()).hexdigest()[:16]
    # "a+": the holder's name stays readable until the lock is taken.
    with open(Path(tempfile.gettempdir()) / f"metapeft-storage-{key}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            sys.exit(
                f"another {lock.read() or 'run'} is using --storage {storage}; wait for it "
                "to finish or stop it (a rerun resumes its studies)"
            )
        lock.truncate(0)
        lock.write(run)
        lock.flush()
        yield


def mark_interrupted(study: optuna.Study) -> None:
    """A RUNNING trial left by a killed build is failed, so its slot is redone."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(
            trial._trial_id, schema.TRIAL_FAIL_REASON, "interrupted build"
        )
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def rekey(storage: str, study: optuna.Study, objective: PEFTObjective) -> optuna.Study:
    """``study`` moved onto ``objective``'s objectives: for a task whose quality objective
    changed since its trials ran on the same data (reverse_word and roman_numerals went
    from accuracy to val_loss). Every trial recorded both, so each keeps its measurement;
    only which of them are the study's values changes. Optuna cannot change a study's
    directions, so the study is recreated under its name with the same trials."""
    trials, attrs, names = study.get_trials(deepcopy=True), study.user_attrs, study.metric_names
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            metrics = schema.trial_metrics(names, trial.values, trial.user_attrs)
            trial.values = [metrics[name] for name in objective.objectives]
    optuna.delete_study(study_name=study.study_name, storage=storage)
    new = optuna.create_study(
        study_name=study.study_name, storage=storage, directions=objective.directions
    )
    schema.name_study_objectives(new, objective.objectives)
    for key, value in attrs.items():
        if key == schema.STUDY_TASK:
            value = {**value, "quality": objective.task.quality_objective}
        new.set_user_attr(key, value)
    for trial in trials:
        new.add_trial(trial)
    return new


def best_metric(
    trials: list[optuna.trial.FrozenTrial], metric: str
) -> tuple[float | None, float | None, str | None]:
    """The best recorded test value of ``metric`` over the complete ``trials``, its
    standard error and the trial's method (Nones when none measured it)."""
    sign = schema.OBJECTIVE_SPECS[metric].sign
    scored = [
        (m[metric], m.get(f"{metric}_se"), t.params.get("method"))
        for t in trials
        if t.state == TrialState.COMPLETE
        and (m := t.user_attrs.get(schema.TRIAL_METRICS) or {}).get(metric) is not None
        and math.isfinite(m[metric])
    ]
    return min(scored, key=lambda r: sign * r[0]) if scored else (None, None, None)


def learns(
    study: optuna.Study, trials: int = BAR, done: list[optuna.trial.FrozenTrial] | None = None
) -> bool | None:
    """The learnability bar on the study's first ``trials`` counted trials: the best beats
    the zero-shot accuracy by ``ACCURACY_GAIN`` or, where val_loss is the quality
    objective (free-form answers), lowers the zero-shot val_loss by ``LOSS_DROP``. None
    while the baseline or every result is missing. ``done``: ``counted(study)``, when
    read already. On label tasks the loss alone says
    little: learning the answer format drops it far while accuracy stays at chance."""
    quality = schema.quality_objective(schema.study_objectives(study))
    zero = (study.user_attrs.get(schema.STUDY_BASELINE) or {}).get(quality)
    best = best_metric((counted(study) if done is None else done)[:trials], quality)[0]
    if zero is None or best is None:
        return None
    if quality == "accuracy":
        return best - zero >= ACCURACY_GAIN
    return best <= (1 - LOSS_DROP) * zero


class LoggedObjective(PEFTObjective):
    """Records the machine's load average at the start of each trial, and the number of
    the trial it ran last."""

    last_trial = -1

    def __call__(self, trial: optuna.Trial):
        self.last_trial = trial.number
        trial.set_user_attr("load_average", os.getloadavg()[0])
        return super().__call__(trial)


def short_method(trials: list[optuna.trial.FrozenTrial], methods: list[str]) -> str | None:
    """The method with the fewest of ``trials`` if it has fewer than ``MIN_PER_METHOD``."""
    runs = Counter(t.params.get("method") for t in trials)
    fewest = min(methods, key=lambda m: runs[m])
    return fewest if runs[fewest] < MIN_PER_METHOD else None


def next_task(studies: dict[str, optuna.Study], configs: int, methods: list[str]) -> str | None:
    """The task to run next (see the module docstring), None when the build is done."""
    bar, rest = [], []
    for spec, study in studies.items():
        trials = counted(study)
        done, verdict = len(trials), learns(study, done=trials)
        if done < BAR and verdict is not True:
            bar.append((done, spec))
        elif verdict is True and (done < configs or short_method(trials, methods)):
            rest.append((spec.split("@")[0] not in CORE, done, spec))
    if bar:
        return min(bar)[1]
    return min(rest)[2] if rest else None


def build(storage: str, tasks: list[str], configs: int, model_spec: str) -> None:
    loaded = load_model(model_spec)
    space = build_space()
    methods = space.methods
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
        if schema.study_objectives(studies[spec]) != tuple(objectives[spec].objectives):
            studies[spec] = rekey(storage, studies[spec], objectives[spec])
        mark_interrupted(studies[spec])
        # A task whose data changed since its trials ran would mix two tasks: stop here
        # (the message names the study to delete or rename) rather than fail every trial.
        objectives[spec].check_study(studies[spec])
    Path(IDLE).unlink(missing_ok=True)  # left by a build killed while held
    started, ran = time.time(), 0
    while (spec := next_task(studies, configs, methods)) is not None:
        study = studies[spec]
        if not enqueue_redo(study):
            trials = counted(study)
            turn = task_seed(spec) // 1000 + len(trials)
            method = short_method(trials, methods) if len(trials) >= configs else None
            study.enqueue_trial({"method": method or methods[turn % len(methods)]})
        # Seeded by task and trial number, so a resumed build draws anew.
        study.sampler = optuna.samplers.RandomSampler(seed=task_seed(spec) + len(study.trials))
        wait_while_held()
        t0 = time.time()
        study.optimize(objectives[spec], n_trials=1, catch=(Exception,))
        trial, ran = study.trials[objectives[spec].last_trial], ran + 1
        outcome = trial.values or trial.user_attrs.get(schema.TRIAL_FAIL_REASON)
        print(
            f"[{time.strftime('%H:%M:%S')}] {spec} #{trial.number} "
            f"{trial.params.get('method')}: {trial.state.name} {outcome} "
            f"({time.time() - t0:.0f} s; {ran} this run, {(time.time() - started) / 3600:.2f} h)",
            flush=True,
        )
    print(f"done: {ran} trials in {(time.time() - started) / 3600:.2f} h", flush=True)


def report(storage: str) -> str:
    """Per task: trials counted and failed, each method's count, the bar's verdict and
    the training and evaluation hours spent."""
    lines = []
    total_train = total_eval = 0.0
    for summary in sorted(optuna.get_all_study_summaries(storage), key=lambda s: s.study_name):
        if not summary.study_name.startswith(PREFIX) or not summary.n_trials:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        done = counted(study)
        complete = [t for t in done if t.state == TrialState.COMPLETE]
        metrics = [
            schema.trial_metrics(study.metric_names, t.values, t.user_attrs) for t in complete
        ]
        train = sum(m.get("train_seconds", 0.0) for m in metrics)
        evaluation = sum(t.user_attrs.get(schema.TRIAL_EVAL_SECONDS, 0.0) for t in complete)
        total_train, total_eval = total_train + train, total_eval + evaluation
        per_method = {}
        for t in done:
            per_method[t.params.get("method")] = per_method.get(t.params.get("method"), 0) + 1
        verdict = {True: "passes", False: "fails", None: "-"}[learns(study, done=done)]
        lines.append(
            f"{summary.study_name.removeprefix(PREFIX):30s} {len(done):3d} done "
            f"({len(done) - len(complete)} failed) bar: {verdict:6s} "
            f"train {train / 60:5.1f} min eval {evaluation / 60:5.1f} min "
            + " ".join(f"{m}={n}" for m, n in sorted(per_method.items()))
        )
    lines.append(
        f"total: training {total_train / 3600:.2f} h, evaluation {total_eval / 3600:.2f} h"
    )
    return "\n".join(lines)


def mark_contended(storage: str, trial_ids: list[int]) -> None:
    """Fail finished trials whose timings other work distorted, so the build redoes their
    configurations. Optuna cannot change a finished trial, so this edits the SQLite
    storage directly (stop the build first; the values stay in the build log)."""
    import sqlite3

    if not storage.startswith("sqlite:///"):
        sys.exit(f"--contended: {storage} is not a SQLite storage URL (sqlite:///PATH)")
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as db:
        known = {row[0] for row in db.execute("SELECT trial_id FROM trials")}
        if missing := sorted(set(trial_ids) - known):
            ids = ", ".join(map(str, missing))
            sys.exit(f"--contended: no trial with trial_id {ids} in {storage}")
        for trial_id in trial_ids:
            db.execute("UPDATE trials SET state = 'FAIL' WHERE trial_id = ?", (trial_id,))
            db.execute("DELETE FROM trial_values WHERE trial_id = ?", (trial_id,))
            db.execute(
                "DELETE FROM trial_user_attributes WHERE trial_id = ? AND key = ?",
                (trial_id, schema.TRIAL_FAIL_REASON),
            )
            db.execute(
                "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, ?, ?)",
                (trial_id, schema.TRIAL_FAIL_REASON, json.dumps(CONTENDED)),
            )
    print(
        f"{len(trial_ids)} trials failed as contended; the build (or the live sampler "
        "comparison on this storage) runs their configurations again"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=STORAGE)
    parser.add_argument("--configs", type=int, default=CONFIGS, help="trials per task")
    parser.add_argument("--tasks", nargs="+", help="task specs (default: every built-in task)")
    parser.add_argument(
        "--core", action="store_true", help="only the CORE tasks: stop when they are complete"
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--report", action="store_true", help="print progress and cost only")
    parser.add_argument("--export", help="write the experience as JSON Lines to this path")
    parser.add_argument(
        "--contended",
        type=int,
        nargs="+",
        metavar="TRIAL_ID",
        help="fail these finished trials (storage trial_id) for redoing: other work ran "
        "beside them (stop the build, or the live comparison on --storage, first)",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.contended:
        mark_contended(args.storage, args.contended)
        return
    if args.export:
        from metapeft_optuna.meta.experience import ExperienceBuffer

        buffer = ExperienceBuffer.from_storages([args.storage])
        buffer.export_jsonl(args.export)
        print(f"exported {len(buffer)} experiences of {len(buffer.task_names())} tasks")
        return
    if args.report:
        print(report(args.storage))
        return
    tasks = args.tasks or task_specs()
    if args.core:
        tasks = [spec for spec in tasks if spec.split("@")[0] in CORE]
    for spec in tasks:
        load_task(spec)  # a bad name fails before the model loads
    print(
        f"metapeft {metapeft_optuna.__version__}, BLAS {metapeft_optuna.BLAS.name}, "
        f"{len(tasks)} tasks x up to {args.configs} configurations",
        flush=True,
    )
    with storage_lock(args.storage, "meta-dataset build"):
        build(args.storage, tasks, args.configs, args.model)
    print(report(args.storage))


if __name__ == "__main__":
    main()
