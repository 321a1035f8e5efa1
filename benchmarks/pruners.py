"""Replay the meta-dataset's learning curves to measure pruning.

For every task, its recorded trials are replayed in a random order as a study: at each
learning-curve point the pruner may stop the trial (its remaining steps are saved and its
final values never exist). Reported: the fraction of training steps saved, and the
normalised hypervolume lost (final front of the trials that finished vs all trials).
Each task is replayed with its study's objectives (its quality objective, accuracy or
val_loss, then peak memory and training time). Pruners: none, MetaPEFTPruner (all
three objectives), Optuna's MedianPruner and SuccessiveHalvingPruner applied to the
quality objective alone (their only option, on its learning curve), and an online
oracle that knows every trial's recorded final values and stops, at its first curve
point, exactly the trials a finished trial dominates: the most any pruner could save
without losing hypervolume in the same replay; then MetaPEFTPruner's and the oracle's
figures task by task. Then, for the tasks scored on accuracy,
how well a trial's first curve point predicts its final accuracy (leave one trial out,
the task's other trials as references): from the curve's accuracy plus the mean gain of
the other curves, or from the curve's validation loss through an isotonic fit of the
others' final accuracy on their loss at the same fraction (what MetaPEFTPruner does in
accuracy studies once it has 10 finished trials). Run:

    python benchmarks/pruners.py [--experience studies/meta_dataset_v2.jsonl] [--orders 5]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

import metapeft_optuna  # noqa: F401
from metapeft_optuna import schema
from metapeft_optuna.meta import ExperienceBuffer, PEFTExperience
from metapeft_optuna.meta.acquisition import hypervolume
from metapeft_optuna.meta.features import target_columns, target_vector
from metapeft_optuna.pruners import MetaPEFTPruner, metric_at
from metapeft_optuna.pruners._prediction import Reference, accuracies_from_val_loss

import numpy as np
import optuna
from build_meta_dataset import build_space
from compare_samplers import REFERENCE, TaskScale, task_objectives
from optuna.trial import TrialState


class OnlineOraclePruner(optuna.pruners.BasePruner):
    """Knows the replayed trials' final values; prunes the ones already dominated."""

    supports_multi_objective = True

    def __init__(self, trials: list[PEFTExperience], objectives: tuple[str, ...]):
        signs = target_columns(objectives)[1]
        self.finals = [
            signs * np.array([e.performance_metrics[o] for o in objectives]) for e in trials
        ]
        self.signs = signs

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        mine = self.finals[trial.number]
        return any(
            (done <= mine).all() and (done != mine).any()
            for done in (
                self.signs * np.array(t.values)
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            )
        )


def make_pruner(
    name: str,
    experience: ExperienceBuffer | None,
    trials: list[PEFTExperience],
    objectives: tuple[str, ...],
):
    if name == "oracle":
        return OnlineOraclePruner(trials, objectives)
    if name == "meta":
        return MetaPEFTPruner(experience=experience)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def replay(
    trials: list[PEFTExperience],
    name: str,
    experience: ExperienceBuffer | None,
    objectives: tuple[str, ...],
) -> tuple[int, int, list[np.ndarray]]:
    """Steps used, steps possible and the targets of the trials that finished."""
    pruner = make_pruner(name, experience, trials, objectives)
    multi = name in ("meta", "none", "oracle")
    directions = schema.directions(objectives)
    study = optuna.create_study(directions=directions if multi else directions[:1], pruner=pruner)
    if multi:
        schema.name_study_objectives(study, objectives)
    curve_key = schema.OBJECTIVE_SPECS[objectives[0]].curve_key
    # The v2 build's space (10-200 steps) holds both meta-datasets' recorded values.
    distributions = build_space().distributions()
    used = possible = 0
    finished = []
    for e in trials:
        total = int(e.hyperparameters["steps"])
        possible += total
        # The recorded configuration, not a fresh sample: the pruner reads the trial's
        # own parameters (its total steps above all).
        study.enqueue_trial(e.hyperparameters)
        trial = study.ask({k: distributions[k] for k in e.hyperparameters})
        stopped_at = None
        for point in e.learning_curve:
            curve = list(trial.user_attrs.get(schema.TRIAL_CURVE) or []) + [point]
            trial.set_user_attr(schema.TRIAL_CURVE, curve)
            if multi:
                frozen = study._storage.get_trial(trial._trial_id)
                prune = bool(pruner.prune(study, frozen))
            else:
                trial.report(float(point[curve_key]), int(point["step"]))
                prune = trial.should_prune()
            if prune and point["step"] < total:
                stopped_at = int(point["step"])
                break
        if stopped_at is not None:
            used += stopped_at
            study.tell(trial, state=TrialState.PRUNED)
            continue
        used += total
        values = [e.performance_metrics[o] for o in objectives]
        study.tell(trial, values if multi else values[0])
        finished.append(target_vector(e.performance_metrics, objectives))
    return used, possible, finished


def first_point_errors(trials: list[PEFTExperience]) -> tuple[list[float], list[float]]:
    """Errors of the mean final accuracy predicted at each trial's first curve point,
    the task's other trials as references: from the point's accuracy (plus the others'
    mean gain) and from its validation loss (the pruner's accuracy studies)."""
    references = [
        Reference(e.learning_curve, int(e.hyperparameters["steps"]), None, e.accuracy, None)
        for e in trials
    ]
    by_gain, by_loss = [], []
    for i, (e, mine) in enumerate(zip(trials, references)):
        first, fraction = e.learning_curve[0], e.learning_curve[0]["step"] / mine.total
        others = references[:i] + references[i + 1 :]
        gains = [r.final - metric_at(r.curve, r.total, fraction) for r in others]
        by_gain.append(first["val_metric"] + float(np.mean(gains)) - mine.final)
        predicted = accuracies_from_val_loss(others, fraction, first["val_loss"])
        by_loss.append(float(predicted.mean()) - mine.final)
    return by_gain, by_loss


def saved(r: dict) -> str:
    """The fraction of training steps a replay's pruner saved."""
    return f"{1 - r['used'] / r['possible']:.1%}" if r["possible"] else "-"


def lost(r: dict) -> str:
    """The normalised hypervolume lost, mean ± standard error over the replays."""
    losses = r["hv_loss"]
    se = np.std(losses, ddof=1) / math.sqrt(len(losses)) if len(losses) > 1 else 0.0
    return f"{np.mean(losses):.2%} ± {se:.2%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset_v2.jsonl"])
    parser.add_argument("--orders", type=int, default=5, help="random trial orders per task")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    buffer = ExperienceBuffer.from_storages(args.experience)
    groups = {k: [e for e in g if e.learning_curve] for k, g in buffer.by_task().items()}
    results = defaultdict(lambda: {"used": 0, "possible": 0, "hv_loss": []})
    per_task = {}  # task -> (quality objective, trials, results of "meta" and "oracle")
    for key, trials in sorted(groups.items()):
        others = ExperienceBuffer(e for k, g in groups.items() if k != key for e in g)
        objectives = task_objectives(trials)  # v1's studies all used accuracy
        targets = np.stack([target_vector(e.performance_metrics, objectives) for e in trials])
        scale = TaskScale(targets, objectives)
        full_hv = hypervolume(scale(targets), REFERENCE)
        mine = defaultdict(lambda: {"used": 0, "possible": 0, "hv_loss": []})
        for order in range(args.orders):
            shuffled = [trials[i] for i in np.random.default_rng(order).permutation(len(trials))]
            for name in ("none", "meta", "median", "halving", "oracle"):
                used, possible, finished = replay(shuffled, name, others, objectives)
                kept = hypervolume(scale(np.array(finished)), REFERENCE) if finished else 0.0
                for r in (results[name], mine[name]):
                    r["used"] += used
                    r["possible"] += possible
                    r["hv_loss"].append((full_hv - kept) / full_hv if full_hv > 0 else 0.0)
        per_task[trials[0].task_name] = (objectives[0], len(trials), mine["meta"], mine["oracle"])
        print(f"{trials[0].task_name}: {len(trials)} trials replayed x {args.orders}", flush=True)
    print(
        "\n| pruner | objectives used | training steps saved | normalised HV lost (mean ± se) "
        "| HV lost (worst task-order) |"
    )
    print("|---|---|---:|---:|---:|")
    labels = {
        "none": ("no pruning", "-"),
        "meta": ("MetaPEFTPruner", "all three"),
        "median": ("MedianPruner", "quality"),
        "halving": ("SuccessiveHalvingPruner", "quality"),
        "oracle": ("online oracle (knows the final values)", "all three"),
    }
    for name, r in results.items():
        label, objectives = labels[name]
        print(f"| {label} | {objectives} | {saved(r)} | {lost(r)} | {np.max(r['hv_loss']):.2%} |")
    # Where the hypervolume is lost says which predictions to improve.
    print(
        "\nMetaPEFTPruner by task:\n\n| task | quality | trials | steps saved "
        "| HV lost (mean ± se over orders) | oracle saves |\n|---|---|---:|---:|---:|---:|"
    )
    for task, (quality, count, meta, oracle) in per_task.items():
        print(f"| {task} | {quality} | {count} | {saved(meta)} | {lost(meta)} | {saved(oracle)} |")
    scored = [
        g
        for g in groups.values()
        if len(g) >= 5
        and task_objectives(g)[0] == "accuracy"
        and all(p.get("val_loss") is not None for e in g for p in e.learning_curve)
    ]
    if scored:
        errors = [first_point_errors(g) for g in scored]
        count = sum(len(g) for g in scored)
        print(
            f"\nFinal accuracy predicted at the first curve point ({count} trials of "
            f"{len(scored)} accuracy tasks, each left out of its task's references):"
        )
        print("\n| predicted from | RMSE ± standard error |\n|---|---:|")
        for label, part in (("accuracy + the others' mean gain", 0), ("val_loss, isotonic", 1)):
            squares = np.square([x for e in errors for x in e[part]])
            rmse = math.sqrt(squares.mean())
            # Delta method: se(sqrt(m)) = se(m) / (2 sqrt(m)).
            se = squares.std(ddof=1) / math.sqrt(len(squares)) / (2 * rmse) if rmse else 0.0
            print(f"| {label} | {rmse:.3f} ± {se:.3f} |")


if __name__ == "__main__":
    main()
