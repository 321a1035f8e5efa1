"""``MetaPEFTPruner``: prunes a fine-tune whose predicted outcome is dominated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState
from scipy.special import ndtr

from .. import schema
from ..meta.experience import ExperienceBuffer, PEFTExperience
from ..meta.prior import prior_experience


def _total_steps(trial: FrozenTrial) -> int | None:
    steps = trial.params.get("steps") or (
        trial.user_attrs.get(schema.TRIAL_HYPERPARAMETERS) or {}
    ).get("steps")
    return int(steps) if steps else None


def _interpolate(
    curve: Sequence[dict[str, Any]], total: int, fraction: float, key: str
) -> float | None:
    points = sorted((p["step"] / total, p[key]) for p in curve if p.get(key) is not None)
    if not points:
        return None
    xs, ys = zip(*points)
    return float(np.interp(fraction, xs, ys))


def metric_at(
    curve: Sequence[dict[str, Any]], total: int, fraction: float, quality: str = "accuracy"
) -> float | None:
    """A curve's quality score (higher is better: accuracy, or minus val_loss) at
    ``fraction`` of training (linear interpolation)."""
    spec = schema.OBJECTIVE_SPECS[quality]
    value = _interpolate(curve, total, fraction, spec.curve_key)
    return None if value is None else -spec.sign * value


def _score(quality: str, value: float) -> float:
    """A quality objective's value as a score where higher is better."""
    return -schema.OBJECTIVE_SPECS[quality].sign * value


@dataclass(frozen=True)
class _Reference:
    """A finished run whose curve shows how curves go on: curve, steps, method, finals
    (``final``: the quality score, higher is better)."""

    curve: Sequence[dict[str, Any]]
    total: int
    method: str | None
    final: float
    seconds: float | None


@dataclass(frozen=True)
class PredictedOutcome:
    """A running trial's predicted final objectives.

    The final quality score (accuracy, or minus val_loss: higher is better) is a
    mixture: one Gaussian of width ``noise`` around each of ``accuracies`` (the current
    value plus the gain a comparable curve made from the same
    fraction of training to its end). A mixture, not one Gaussian, because curves jump:
    a prompt-tuning run at 0.4 that ends at 0.94 is rare but real, and a Gaussian fitted
    to all gains calls it impossible. Log training time is Gaussian.

    Example:
        >>> outcome = PredictedOutcome(np.array([0.5, 0.7]), 0.05, 600.0, math.log(30), 0.1)
        >>> round(outcome.probability_accuracy_at_most(0.6), 2)
        0.5
    """

    accuracies: np.ndarray
    noise: float
    memory: float | None
    log_seconds: float | None
    log_seconds_std: float

    def probability_accuracy_at_most(self, value: float) -> float:
        """Probability that the final quality score is at most ``value``."""
        return float(np.mean(ndtr((value - self.accuracies) / self.noise)))

    def probability_at_least_as_slow(self, seconds: float) -> float:
        if self.log_seconds is None:
            return 1.0
        return float(ndtr((self.log_seconds - math.log(seconds)) / self.log_seconds_std))


class MetaPEFTPruner(BasePruner):
    """Predicts a trial's final (quality, memory, time) from its partial learning curve
    and prunes it when some finished trial probably dominates that outcome.

    Objectives are read by name (``schema.study_objectives``); quality is the study's
    accuracy or val_loss objective, tracked on the curve by the validation metric or
    the validation loss. A study without a quality objective is never pruned.

    Final quality: the current validation value plus the gains that comparable curves
    made from the same fraction of training to their end (this study's finished trials
    and, when given, past experience: the same task's if there is any), taken from runs
    of the same PEFT method once there are ``min_same_method`` of them, since methods
    learn at different paces. Training time: from the rate between the last two curve
    points; with one point, the first steps also pay for compilation, so the time is
    scaled by how comparable runs went on from the same fraction. Peak memory is reached
    in the first steps, so the peak so far (or the sampler's prediction) stands for it.
    The trial is pruned when, for some finished trial at most as heavy, the probability
    that it is at least as accurate and as fast exceeds ``threshold``.

    In single-objective quality studies it behaves as a normal pruner (through
    ``trial.report``/``trial.should_prune``): it prunes when the final value is worse than
    the best finished trial's with probability above ``threshold``. In multi-objective
    studies report with :func:`metapeft_optuna.pruners.report` and ask with
    :func:`metapeft_optuna.pruners.should_prune` (``PEFTObjective`` does both).

    Args:
        threshold: Probability of being dominated above which a trial is pruned.
        n_startup_trials: Never prune before this many trials finished.
        n_warmup_points: Never prune a trial before this many curve points.
        experience: Past curves (an :class:`ExperienceBuffer`) that show how curves go on.
        use_prior: Without ``experience``, use the curves the shipped prior was trained
            on (loaded at the first decision).
        noise_floor: Width of the Gaussian around each predicted final accuracy (the
            evaluation noise of a few dozen examples).
        min_same_method: Comparable curves of the trial's own method needed before the
            others are left out.

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
        threshold: float = 0.8,
        n_startup_trials: int = 3,
        n_warmup_points: int = 1,
        experience: ExperienceBuffer | None = None,
        use_prior: bool = True,
        noise_floor: float = 0.05,
        min_same_method: int = 10,
    ):
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold} must be in (0, 1).")
        if noise_floor <= 0:
            raise ValueError(f"noise_floor={noise_floor} must be positive.")
        self.threshold = threshold
        self.n_startup_trials = n_startup_trials
        self.n_warmup_points = n_warmup_points
        self.experience = experience
        self.use_prior = use_prior
        self.noise_floor = noise_floor
        self.min_same_method = min_same_method
        self._past_cache: tuple[Any, list[_Reference]] = (None, [])

    # --- references ---------------------------------------------------------------------------
    def _references(
        self,
        study: Study,
        names: Sequence[str],
        quality: str,
        finished: Sequence[FrozenTrial] | None = None,
    ) -> tuple[list[_Reference], list[_Reference]]:
        """``(this study's finished runs, past runs)``, read once per decision."""
        if finished is None:
            finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        own = []
        for other in finished:
            values = schema.metrics_by_name(names, other.values)
            curve, total = other.user_attrs.get(schema.TRIAL_CURVE), _total_steps(other)
            if curve and total and quality in values:
                own.append(
                    _Reference(
                        curve,
                        total,
                        other.params.get("method"),
                        _score(quality, values[quality]),
                        values.get("train_seconds"),
                    )
                )
        task = study.user_attrs.get(schema.STUDY_TASK, {}).get("name")
        return own, self._past_references(task, quality)

    def _past_references(self, task: str | None, quality: str) -> list[_Reference]:
        if self.experience is None and self.use_prior:
            self.experience = prior_experience() or ExperienceBuffer()
        if self.experience is None:
            return []
        # The experience rarely changes while a study runs: build its references once.
        key = (id(self.experience), task, quality, len(self.experience))
        if self._past_cache[0] != key:
            references = [
                _Reference(
                    e.learning_curve,
                    int(e.hyperparameters["steps"]),
                    e.method_used.value,
                    _score(quality, e.performance_metrics[quality]),
                    e.performance_metrics.get("train_seconds"),
                )
                for e in self._experience_for(task, quality)
                if e.learning_curve and e.hyperparameters.get("steps")
            ]
            self._past_cache = (key, references)
        return self._past_cache[1]

    def _experience_for(self, task: str | None, quality: str) -> list[PEFTExperience]:
        complete = [
            e for e in self.experience.complete() if e.performance_metrics.get(quality) is not None
        ]
        same = [e for e in complete if e.task_name == task]
        return same or complete

    # --- prediction -----------------------------------------------------------------------
    def _final_scores(
        self, trial: FrozenTrial, quality: str, own: list[_Reference], past: list[_Reference]
    ) -> np.ndarray | None:
        curve = trial.user_attrs.get(schema.TRIAL_CURVE)
        total = _total_steps(trial)
        key = schema.OBJECTIVE_SPECS[quality].curve_key
        if not curve or not total or curve[-1].get(key) is None:
            return None
        fraction = curve[-1]["step"] / total
        gains, same = [], []
        for ref in own + past:
            at = metric_at(ref.curve, ref.total, fraction, quality)
            if at is not None:
                gains.append(ref.final - at)
                if ref.method == trial.params.get("method"):
                    same.append(ref.final - at)
        if not gains:
            return None
        chosen = same if len(same) >= self.min_same_method else gains
        return _score(quality, curve[-1][key]) + np.array(chosen)

    def _log_seconds(
        self, trial: FrozenTrial, own: list[_Reference], past: list[_Reference]
    ) -> tuple[float, float] | None:
        curve = [p for p in trial.user_attrs.get(schema.TRIAL_CURVE) or [] if p.get("step")]
        timed = [p for p in curve if p.get("train_seconds") is not None]
        total = _total_steps(trial)
        if not timed or not total:
            return None
        last = timed[-1]
        if len(timed) >= 2:
            # Past the first point the step time is steady (measured: log error sd 0.05).
            previous = timed[-2]
            rate = (last["train_seconds"] - previous["train_seconds"]) / (
                last["step"] - previous["step"]
            )
            return math.log(last["train_seconds"] + rate * (total - last["step"])), 0.05
        fraction = last["step"] / total
        ratios = []
        # Times are this machine's: past runs only stand in while the study has few.
        for ref in own if len(own) >= 5 else own + past:
            at = _interpolate(ref.curve, ref.total, fraction, "train_seconds")
            if at and ref.seconds:
                ratios.append(math.log(ref.seconds / at))
        base = math.log(last["train_seconds"])
        if len(ratios) < 3:
            return base - math.log(fraction), 0.3
        return base + float(np.median(ratios)), float(np.std(ratios)) + 0.02

    def predict_final_quality(self, study: Study, trial: FrozenTrial) -> tuple[float, float] | None:
        """Mean and standard deviation of the trial's final quality score (accuracy, or
        minus val_loss), or None (no quality objective, or a curve that says nothing)."""
        names = schema.study_objectives(study)
        quality = schema.quality_objective(names)
        if quality is None:
            return None
        finals = self._final_scores(trial, quality, *self._references(study, names, quality))
        if finals is None:
            return None
        return float(finals.mean()), math.sqrt(float(finals.var()) + self.noise_floor**2)

    def predict_log_seconds(self, study: Study, trial: FrozenTrial) -> tuple[float, float] | None:
        """Mean and standard deviation of the log of the trial's final training time."""
        names = schema.study_objectives(study)
        quality = schema.quality_objective(names) or "accuracy"
        return self._log_seconds(trial, *self._references(study, names, quality))

    @staticmethod
    def predict_memory(trial: FrozenTrial) -> float | None:
        """Peak memory (MB): the peak so far, or the sampler's prediction."""
        curve = trial.user_attrs.get(schema.TRIAL_CURVE) or []
        memory = curve[-1].get("peak_memory_mb") if curve else None
        if memory is None:
            memory = (trial.user_attrs.get(schema.TRIAL_PREDICTION) or {}).get("peak_memory_mb")
        return memory

    def predict_outcome(
        self,
        study: Study,
        trial: FrozenTrial,
        finished: Sequence[FrozenTrial] | None = None,
        objectives: Sequence[str] | None = None,
    ) -> PredictedOutcome | None:
        """The trial's predicted final objectives, or None if its curve says nothing yet.

        ``finished`` and ``objectives``: the study's complete trials and objective names,
        when the caller has read them already.
        """
        names = objectives or schema.study_objectives(study)
        quality = schema.quality_objective(names)
        if quality is None:
            return None
        own, past = self._references(study, names, quality, finished)
        finals = self._final_scores(trial, quality, own, past)
        if finals is None:
            return None
        log_seconds = self._log_seconds(trial, own, past)
        return PredictedOutcome(
            finals,
            self.noise_floor,
            self.predict_memory(trial),
            log_seconds[0] if log_seconds else None,
            log_seconds[1] if log_seconds else 1.0,
        )

    # --- decision ----------------------------------------------------------------------------
    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        curve = trial.user_attrs.get(schema.TRIAL_CURVE) or []
        if len(curve) < self.n_warmup_points:
            return False
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(finished) < self.n_startup_trials:
            return False
        names = schema.study_objectives(study)
        outcome = self.predict_outcome(study, trial, finished, names)
        if outcome is None:
            return False
        if len(names) == 1:
            best = max(_score(names[0], t.value) for t in finished if t.value is not None)
            return outcome.probability_accuracy_at_most(best) > self.threshold
        return self.probability_dominated(outcome, finished, names) > self.threshold

    @staticmethod
    def probability_dominated(
        outcome: PredictedOutcome,
        finished: Sequence[FrozenTrial],
        objectives: Sequence[str] = schema.DEFAULT_OBJECTIVES,
    ) -> float:
        """The largest probability, over finished trials at most as heavy, that one is at
        least as good and as fast as the predicted outcome (a lower bound on the
        probability that some finished trial dominates it). Objectives the study does not
        have (memory, time) do not count."""
        quality = schema.quality_objective(objectives)
        largest = 0.0
        for other in finished:
            values = schema.metrics_by_name(objectives, other.values)
            if quality not in values:
                continue
            memory = values.get("peak_memory_mb")
            if outcome.memory is not None and memory is not None and memory > outcome.memory:
                continue
            probability = outcome.probability_accuracy_at_most(_score(quality, values[quality]))
            if "train_seconds" in values:
                probability *= outcome.probability_at_least_as_slow(values["train_seconds"])
            largest = max(largest, probability)
        return largest
