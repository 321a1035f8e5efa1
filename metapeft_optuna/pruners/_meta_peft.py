"""``MetaPEFTPruner``: prunes a fine-tune whose predicted outcome is dominated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.special import ndtr

from .. import schema
from ..meta.experience import ExperienceBuffer, PEFTExperience


def _total_steps(trial: FrozenTrial) -> int | None:
    steps = trial.params.get("steps") or (
        trial.user_attrs.get(schema.TRIAL_HYPERPARAMETERS) or {}
    ).get("steps")
    return int(steps) if steps else None


def metric_at(curve: Sequence[dict[str, Any]], total: int, fraction: float) -> float | None:
    """A curve's validation metric at ``fraction`` of training (linear interpolation)."""
    points = sorted(
        (p["step"] / total, p["val_metric"]) for p in curve if p.get("val_metric") is not None
    )
    if not points:
        return None
    xs, ys = zip(*points)
    return float(np.interp(fraction, xs, ys))


class MetaPEFTPruner(BasePruner):
    """Predicts a trial's final (accuracy, memory, time) from its partial learning curve
    and prunes it when that outcome is dominated by the current Pareto front with high
    probability.

    Final accuracy is the current validation metric plus the gain that comparable
    curves showed from the same fraction of training to their end: this study's
    finished trials first, then (when given) experience from similar past tasks. Its
    uncertainty is the spread of those gains (at least ``noise_floor``). Training time is
    extrapolated from the elapsed time; peak memory is reached in the first steps, so
    the peak so far (or the sampler's prediction) stands for it. The trial is pruned
    when the probability that a finished trial at least as cheap is at least as accurate
    exceeds ``threshold``.

    In single-objective studies it behaves as a normal pruner (through
    ``trial.report``/``trial.should_prune``): it prunes when the predicted final value
    is worse than the best finished trial with probability above ``threshold``. In
    multi-objective studies report with :func:`metapeft_optuna.pruners.report` and ask
    with :func:`metapeft_optuna.pruners.should_prune` (``PEFTObjective`` does both).

    Args:
        threshold: Probability of being dominated above which a trial is pruned.
        n_startup_trials: Never prune before this many trials finished.
        n_warmup_points: Never prune a trial before this many curve points.
        experience: Past curves (an :class:`ExperienceBuffer`) used when the study has
            few finished trials of its own.
        noise_floor: Minimum standard deviation of the predicted final accuracy.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize", pruner=MetaPEFTPruner())
        >>> isinstance(study.pruner, MetaPEFTPruner)
        True
    """

    supports_multi_objective = True

    def __init__(
        self,
        *,
        threshold: float = 0.9,
        n_startup_trials: int = 3,
        n_warmup_points: int = 1,
        experience: ExperienceBuffer | None = None,
        noise_floor: float = 0.05,
    ):
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold} must be in (0, 1).")
        self.threshold = threshold
        self.n_startup_trials = n_startup_trials
        self.n_warmup_points = n_warmup_points
        self.experience = experience
        self.noise_floor = noise_floor

    # --- prediction -----------------------------------------------------------------------
    def _reference_curves(
        self, study: Study, trial: FrozenTrial
    ) -> list[tuple[Sequence[dict[str, Any]], int, float]]:
        """``(curve, total steps, final accuracy)`` of finished comparable runs."""
        references = []
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            curve = other.user_attrs.get(schema.TRIAL_CURVE)
            total = _total_steps(other)
            if curve and total and other.values:
                references.append((curve, total, other.values[0]))
        if self.experience is not None and len(references) < 5:
            task = study.user_attrs.get(schema.STUDY_TASK, {}).get("name")
            for e in self._experience_for(task):
                total = e.hyperparameters.get("steps")
                if e.learning_curve and total:
                    references.append((e.learning_curve, int(total), e.accuracy))
        return references

    def _experience_for(self, task: str | None) -> list[PEFTExperience]:
        complete = self.experience.complete()
        same = [e for e in complete if e.task_name == task]
        return same or complete

    def predict_final_accuracy(
        self, study: Study, trial: FrozenTrial
    ) -> tuple[float, float] | None:
        """Mean and standard deviation of the trial's final accuracy, or None."""
        curve = trial.user_attrs.get(schema.TRIAL_CURVE)
        total = _total_steps(trial)
        if not curve or not total:
            return None
        fraction = curve[-1]["step"] / total
        current = curve[-1]["val_metric"]
        gains = []
        for ref_curve, ref_total, final in self._reference_curves(study, trial):
            at = metric_at(ref_curve, ref_total, fraction)
            if at is not None:
                gains.append(final - at)
        if not gains:
            return None
        gains = np.array(gains)
        std = math.sqrt(gains.var() + self.noise_floor**2)
        return float(current + gains.mean()), std

    @staticmethod
    def predict_cost(study: Study, trial: FrozenTrial) -> tuple[float | None, float | None]:
        """Predicted (peak memory MB, training seconds) at the end of the trial."""
        curve = trial.user_attrs.get(schema.TRIAL_CURVE) or []
        total = _total_steps(trial)
        memory = curve[-1].get("peak_memory_mb") if curve else None
        if memory is None:
            memory = (trial.user_attrs.get(schema.TRIAL_PREDICTION) or {}).get("peak_memory_mb")
        seconds = None
        if curve and total and curve[-1].get("train_seconds") is not None:
            seconds = curve[-1]["train_seconds"] * total / curve[-1]["step"]
        return memory, seconds

    # --- decision ----------------------------------------------------------------------------
    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        curve = trial.user_attrs.get(schema.TRIAL_CURVE) or []
        if len(curve) < self.n_warmup_points:
            return False
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(finished) < self.n_startup_trials:
            return False
        prediction = self.predict_final_accuracy(study, trial)
        if prediction is None:
            return False
        mean, std = prediction
        if len(study.directions) == 1:
            values = [t.value for t in finished if t.value is not None]
            if study.direction == StudyDirection.MAXIMIZE:
                probability_worse = ndtr((max(values) - mean) / std)
            else:
                probability_worse = ndtr((mean - min(values)) / std)
            return bool(probability_worse > self.threshold)
        return bool(self.probability_dominated(study, trial, mean, std, finished) > self.threshold)

    def probability_dominated(
        self,
        study: Study,
        trial: FrozenTrial,
        mean: float,
        std: float,
        finished: Sequence[FrozenTrial],
    ) -> float:
        """P(some finished trial is at least as accurate, as light and as fast)."""
        memory, seconds = self.predict_cost(study, trial)
        rivals = []
        for other in finished:
            if not other.values or len(other.values) != len(schema.OBJECTIVES):
                continue
            accuracy, other_memory, other_seconds = other.values
            if memory is not None and other_memory > memory:
                continue
            if seconds is not None and other_seconds > seconds:
                continue
            rivals.append(accuracy)
        if not rivals:
            return 0.0
        return float(ndtr((max(rivals) - mean) / std))
