"""MetaPEFTPruner and the reporting helpers, in multi- and single-objective studies."""

from __future__ import annotations

import dataclasses
import math
import sys

from metapeft_optuna import schema
from metapeft_optuna.meta import ExperienceBuffer
from metapeft_optuna.pruners import MetaPEFTPruner, metric_at, report, should_prune
from metapeft_optuna.training import PEFTObjective, PEFTSearchSpace, TrainingBudget
from metapeft_optuna.training.search_space import ParamSpec, default_specs

import optuna
import pytest
from conftest import import_benchmark
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState
from synthetic_experience import TASKS, synthetic_experiences

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTRIBUTIONS = {
    "method": CategoricalDistribution(("lora", "prompt_tuning")),
    "steps": IntDistribution(10, 30, step=10),
}


def curve(values, total=30, seconds_per_step=1.0, memory=600.0, points=4):
    """A learning curve sampled at ``points`` evenly spaced steps (the first values)."""
    steps = [round(total * (i + 1) / points) for i in range(len(values))]
    return [
        {
            "step": s,
            "val_metric": v,
            "val_loss": 1 - v,
            "train_loss": 1 - v,
            "train_seconds": s * seconds_per_step,
            "peak_memory_mb": memory,
        }
        for s, v in zip(steps, values)
    ]


def finished_study(directions=("maximize", "minimize", "minimize")):
    study = optuna.create_study(directions=list(directions), pruner=MetaPEFTPruner(use_prior=False))
    for final, memory, seconds, trace in [
        (0.90, 600.0, 30.0, [0.6, 0.75, 0.85, 0.88]),
        (0.85, 550.0, 20.0, [0.55, 0.7, 0.8, 0.84]),
        (0.80, 500.0, 25.0, [0.5, 0.65, 0.75, 0.79]),
    ]:
        values = [final, memory, seconds][: len(directions)]
        study.add_trial(
            optuna.trial.create_trial(
                params={"method": "lora", "steps": 30},
                distributions=DISTRIBUTIONS,
                values=values,
                user_attrs={
                    schema.TRIAL_CURVE: curve(trace, seconds_per_step=seconds / 30, memory=memory)
                },
            )
        )
    return study


def running_trial(study, trace, memory=700.0, seconds_per_step=1.2):
    trial = study.ask(DISTRIBUTIONS | {"steps": IntDistribution(30, 30)})
    for point in curve(trace, seconds_per_step=seconds_per_step, memory=memory):
        report(trial, point)
    return trial


def test_prunes_a_clearly_dominated_curve():
    study = finished_study()
    trial = running_trial(study, [0.2, 0.25])
    assert should_prune(trial)
    frozen = study._storage.get_trial(trial._trial_id)
    mean, std = study.pruner.predict_final_quality(study, frozen)
    assert mean < 0.5 and std >= 0.05
    log_seconds, _ = study.pruner.predict_log_seconds(study, frozen)
    assert study.pruner.predict_memory(frozen) == 700.0
    assert math.exp(log_seconds) == pytest.approx(36.0)


def test_keeps_a_trial_that_could_reach_the_front():
    study = finished_study()
    assert not should_prune(running_trial(study, [0.65, 0.8]))
    # Cheaper than every finished trial: nothing dominates it, whatever its accuracy.
    assert not should_prune(running_trial(study, [0.2, 0.25], memory=400.0, seconds_per_step=0.1))


def test_waits_for_startup_trials_and_curve_points():
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        pruner=MetaPEFTPruner(n_startup_trials=3, use_prior=False),
    )
    assert not should_prune(running_trial(study, [0.1]))
    study = finished_study()
    study.pruner.n_warmup_points = 3
    assert not should_prune(running_trial(study, [0.1, 0.1]))


def test_the_first_curve_point_asks_for_first_point_threshold():
    study = finished_study()
    trial = running_trial(study, [0.5])
    frozen = study._storage.get_trial(trial._trial_id)
    finished = study.get_trials(states=(TrialState.COMPLETE,))
    outcome = study.pruner.predict_outcome(study, frozen)
    probability = MetaPEFTPruner.probability_dominated(outcome, finished)
    assert 0.0 < probability < 1.0
    study.pruner.threshold = 0.0  # later points' threshold: not the one asked here
    study.pruner.first_point_threshold = min(probability + 0.01, 0.999)
    assert not should_prune(trial)
    study.pruner.first_point_threshold = probability - 0.01
    assert should_prune(trial)


def test_single_objective_study_through_trial_report():
    study = finished_study(directions=("maximize",))

    def objective(trial):
        trial.suggest_categorical("method", ["lora", "prompt_tuning"])
        trial.suggest_int("steps", 10, 30, step=10)
        for point in curve([0.1, 0.15, 0.2, 0.25]):
            report(trial, point)  # also calls trial.report in single-objective studies
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 0.3

    study.optimize(objective, n_trials=1)
    pruned = study.trials[-1]
    assert pruned.state == TrialState.PRUNED
    assert pruned.intermediate_values == {8: 0.1}
    assert pruned.user_attrs[schema.TRIAL_CURVE][0]["val_metric"] == 0.1


def test_never_raises_in_multi_objective_studies_and_pruned_trials_stay_experience(tiny):
    space = PEFTSearchSpace(
        methods=("lora",),
        specs=[
            ParamSpec("steps", IntDistribution(4, 4), s.methods) if s.name == "steps" else s
            for s in default_specs()
        ],
    )
    objective = PEFTObjective(
        "parity@64",
        model=tiny,
        search_space=space,
        budget=TrainingBudget(curve_points=2, eval_examples=8),
    )
    study = optuna.create_study(
        directions=objective.directions, pruner=MetaPEFTPruner(n_startup_trials=1)
    )
    study.optimize(objective, n_trials=3)  # whatever it decides, nothing raises
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}

    class PruneAfterFirst(MetaPEFTPruner):
        def prune(self, study, trial):
            return trial.number > 0

    study = optuna.create_study(directions=objective.directions, pruner=PruneAfterFirst())
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    pruned = study.trials[1]
    assert len(pruned.user_attrs[schema.TRIAL_CURVE]) == 1  # stopped at its first point
    experience = ExperienceBuffer.from_storages([study._storage])
    assert sorted(e.state for e in experience) == ["complete", "pruned"]
    # Optuna's own pruners are skipped in multi-objective studies instead of raising.
    other = optuna.create_study(
        directions=objective.directions, pruner=optuna.pruners.MedianPruner(n_startup_trials=0)
    )
    other.optimize(objective, n_trials=2)
    assert all(t.state == TrialState.COMPLETE for t in other.trials)


def _past_task_study():
    buffer_study = finished_study()
    buffer_study.set_user_attr(
        schema.STUDY_TASK,
        {
            "name": "t",
            "characteristics": {
                "dataset_size": 10,
                "sequence_length": 5,
                "vocabulary_size": 5,
                "domain": "other",
                "task_type": "classification",
                "complexity_score": 0.5,
            },
        },
    )
    buffer_study.set_user_attr(schema.STUDY_MODEL, {"name": "m"})
    return ExperienceBuffer.from_storages([buffer_study._storage])


def _first_point_prediction(pruner):
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = running_trial(study, [0.3])
    return pruner.predict_final_quality(study, study._storage.get_trial(trial._trial_id))


def test_uses_past_curves_when_the_study_has_none():
    prediction = _first_point_prediction(
        MetaPEFTPruner(n_startup_trials=0, experience=_past_task_study())
    )
    assert prediction is not None and prediction[0] > 0.3


def test_default_past_curves_are_the_shipped_priors(tmp_path, monkeypatch):
    (tmp_path / "meta_model.json").write_text("{}")
    _past_task_study().export_jsonl(tmp_path / "experience.jsonl")
    monkeypatch.setenv("METAPEFT_PRIOR", str(tmp_path))
    pruner = MetaPEFTPruner(n_startup_trials=0)
    prediction = _first_point_prediction(pruner)
    assert prediction is not None and prediction[0] > 0.3
    assert len(pruner.experience) == 3
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    assert _first_point_prediction(MetaPEFTPruner(n_startup_trials=0)) is None
    monkeypatch.setenv("METAPEFT_PRIOR", str(tmp_path))
    assert _first_point_prediction(MetaPEFTPruner(n_startup_trials=0, use_prior=False)) is None


def _add_finished(study, method, trace, final, memory, seconds, warmup=0.0):
    points = curve(trace, seconds_per_step=seconds / 30, memory=memory)
    for point in points:
        point["train_seconds"] += warmup
    study.add_trial(
        optuna.trial.create_trial(
            params={"method": method, "steps": 30},
            distributions=DISTRIBUTIONS,
            values=[final, memory, seconds + warmup],
            user_attrs={schema.TRIAL_CURVE: points},
        )
    )


def test_judges_a_curve_by_runs_of_its_own_method():
    """Prompt tuning here learns late, LoRA does not: the same first point means different
    ends, and a late learner must not be pruned for its slow start."""
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        pruner=MetaPEFTPruner(min_same_method=3, use_prior=False),
    )
    for _ in range(3):
        _add_finished(study, "lora", [0.3, 0.3, 0.3, 0.3], 0.3, 500.0, 20.0)
        _add_finished(study, "prompt_tuning", [0.3, 0.35, 0.6, 0.9], 0.9, 500.0, 20.0)
    _add_finished(study, "lora", [0.8, 0.85, 0.85, 0.85], 0.85, 400.0, 10.0)

    def first_point(method):
        study.enqueue_trial({"method": method, "steps": 30})
        trial = study.ask(DISTRIBUTIONS)
        report(trial, curve([0.3], memory=600.0)[0])
        return trial

    assert should_prune(first_point("lora"))
    assert not should_prune(first_point("prompt_tuning"))


def test_accuracy_is_predicted_from_the_validation_loss_once_the_study_has_enough_runs():
    """Every run here scores 0.5 on the validation examples at its first curve point
    (accuracy on a few dozen examples is noise-bound), but its loss there already ranks
    where it ends; ten finished runs are enough to read that."""
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"], pruner=MetaPEFTPruner(use_prior=False)
    )

    def predicted(first_loss):
        trial = study.ask(DISTRIBUTIONS | {"steps": IntDistribution(30, 30)})
        report(trial, curve([0.5])[0] | {"val_loss": first_loss})
        frozen = study._storage.get_trial(trial._trial_id)
        return study.pruner.predict_final_quality(study, frozen)[0]

    finals = [0.3 + 0.06 * i for i in range(10)]
    for final in finals:
        points = curve([0.5, final, final, final], seconds_per_step=0.5)
        points[0]["val_loss"] = 2.0 - final
        study.add_trial(
            optuna.trial.create_trial(
                params={"method": "lora", "steps": 30},
                distributions=DISTRIBUTIONS,
                values=[final, 500.0, 15.0],
                user_attrs={schema.TRIAL_CURVE: points},
            )
        )
        if len(study.trials) == 9:
            # Nine runs: the curve's accuracy plus their mean gain, whatever the loss.
            assert predicted(1.15) == pytest.approx(predicted(1.65)) == pytest.approx(0.54)
    assert predicted(1.2) == pytest.approx(0.8)  # 2 - loss, as the finished runs
    assert predicted(1.62) == pytest.approx(0.38)


def test_first_point_time_is_scaled_like_comparable_runs():
    """The first curve point also paid for compilation: extrapolating it linearly would
    overestimate the time; the finished runs show by how much."""
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"], pruner=MetaPEFTPruner(use_prior=False)
    )
    for _ in range(3):
        _add_finished(study, "lora", [0.5] * 4, 0.5, 500.0, 30.0, warmup=10.0)
    trial = study.ask(DISTRIBUTIONS | {"steps": IntDistribution(30, 30)})
    point = curve([0.5], seconds_per_step=2.0)[0]  # 16 s of steps at step 8
    point["train_seconds"] += 10.0
    report(trial, point)
    frozen = study._storage.get_trial(trial._trial_id)
    seconds = math.exp(study.pruner.predict_log_seconds(study, frozen)[0])
    # Finished runs went from 18 s at step 8 to 40 s at the end: x 2.22, so 26 s -> 57.8 s
    # (a linear extrapolation would say 97.5 s).
    assert seconds == pytest.approx(26.0 * 40.0 / 18.0, rel=1e-3)


def test_metric_interpolation_and_bad_threshold():
    points = curve([0.2, 0.4, 0.6, 0.8])  # at steps 8, 15, 22, 30 of 30
    assert metric_at(points, 30, 15 / 30) == pytest.approx(0.4)
    assert metric_at(points, 30, 18.5 / 30) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="threshold=1.5"):
        MetaPEFTPruner(threshold=1.5)
    with pytest.raises(ValueError, match="first_point_threshold=0"):
        MetaPEFTPruner(first_point_threshold=0)
    with pytest.raises(ValueError, match="noise_floor=0"):
        MetaPEFTPruner(noise_floor=0)
    with pytest.raises(ValueError, match="min_loss_references=1"):
        MetaPEFTPruner(min_loss_references=1)


def test_replay_benchmark_reports_every_pruner_and_every_task(tmp_path, monkeypatch, capsys):
    """benchmarks/pruners.py end to end on synthetic 4-point curves: the oracle loses
    nothing, no pruning saves nothing, and each task gets its own line."""
    pruners = import_benchmark("pruners")
    tasks = TASKS[:3]
    experiences = []
    for e in synthetic_experiences(per_task=8):
        if e.task_name not in tasks:
            continue
        metrics, total = e.performance_metrics, int(e.hyperparameters["steps"])
        points = curve(
            [metrics["accuracy"] * f**0.5 for f in (0.25, 0.5, 0.75, 1.0)],
            total=total,
            seconds_per_step=metrics["train_seconds"] / total,
            memory=metrics["peak_memory_mb"],
        )
        experiences.append(dataclasses.replace(e, learning_curve=tuple(points)))
    path = ExperienceBuffer(experiences).export_jsonl(tmp_path / "curves.jsonl")
    monkeypatch.setattr(sys, "argv", ["pruners.py", "--experience", str(path), "--orders", "2"])
    pruners.main()
    out = capsys.readouterr().out
    assert "| no pruning | - | 0.0% | 0.00% ± 0.00% | 0.00% |" in out
    assert "| online oracle (knows the final values) | all three |" in out
    oracle = next(line for line in out.splitlines() if line.startswith("| online oracle"))
    assert "| 0.00% ± 0.00% | 0.00% |" in oracle
    for task in tasks:
        assert any(line.startswith(f"| {task} | accuracy | 8 |") for line in out.splitlines())
