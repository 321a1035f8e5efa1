"""``MetaPEFTPruner``: prunes a fine-tune whose predicted outcome is dominated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.pruners import BasePruner
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from .. import schema
from ..meta.experience import ExperienceBuffer, PEFTExperience
from ..meta.prior import prior_experience
from ..validation import check_int, check_number
from ._prediction import (
    LINEAR_LOG_TIME_SD,
    LOG_TIME_SD,
    PredictedOutcome,
    Reference,
    accuracies_from_val_loss,
    interpolate,
    metric_at,
    quality_score,
    total_steps,
)


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
    learn at different paces. In accuracy studies with ``min_loss_references`` finished
    trials, the final accuracy is predicted from the curve's validation loss instead,
    through how this study's finished runs' losses at the same fraction of training
    ranked their final accuracies (a loss on a few dozen examples is far less noisy than
    their accuracy). Training time: from the rate between the last two curve
    points; with one point, the first steps also pay for compilation, so the time is
    scaled by how comparable runs went on from the same fraction. Peak memory is reached
    in the first steps, so the peak so far (or the sampler's prediction) stands for it.
    The trial is pruned when, for some finished trial at most as heavy, the probability
    that it is at least as accurate and as fast exceeds ``threshold``
    (``first_point_threshold`` at the curve's first point, where predictions are least
    reliable).

    In single-objective quality studies it behaves as a normal pruner (through
    ``trial.report``/``trial.should_prune``): it prunes when the final value is worse than
    the best finished trial's with probability above ``threshold``. In multi-objective
    studies report with :func:`metapeft_optuna.pruners.report` and ask with
    :func:`metapeft_optuna.pruners.should_prune` (``PEFTObjective`` does both).

    Args:
        threshold: Probability of being dominated above which a trial is pruned.
        first_point_threshold: The same, when the curve has a single point.
        n_startup_trials: Never prune before this many trials finished.
        n_warmup_points: Never prune a trial before this many curve points.
        experience: Past curves (an :class:`ExperienceBuffer`) that show how curves go on.
        use_prior: Without ``experience``, use the curves the shipped prior was trained
            on (loaded at the first decision).
        noise_floor: Width of the Gaussian around each predicted final accuracy (the
            evaluation noise of a few dozen examples).
        min_same_method: Comparable curves of the trial's own method needed before the
            others are left out.
        min_loss_references: Finished trials of this study needed before an accuracy is
            predicted from the curve's validation loss.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize", pruner=MetaPEFTPruner())
        >>> isinstance(study.pruner, MetaPEFTPruner)
        True
    """

    supports_multi_objective = True

    # Defaults: threshold 0.8 was chosen on the replay of the meta-dataset's curves
    # (benchmarks/pruners.py, docs/benchmarks.md), where it kept the hypervolume lost
    # under 1% on v1. On v2 (529 trials, 10-200 steps) it lost 1.61% +- 0.42%: at the
    # first point, accuracy studies' predictions were overconfident (p >= 0.95 dominated
    # 93% of the time), so the first point asks for 0.9 (v2: 20.9% of steps saved for
    # 0.54% +- 0.16% lost; v1: 25.6% for 0.68% +- 0.20%). noise_floor 0.05 (the standard
    # error of an accuracy near 0.5 on 100 examples), min_same_method 10 and the start-up
    # counts are judgements, not tuned separately; the replay reports what they give
    # together. min_loss_references 10: on the first meta-dataset's replay, 6-12 saved
    # 29.6-30.2% of steps for 0.69-0.86% hypervolume lost (25.1% / 0.77% without the
    # loss), 4 lost 2.96%.
    def __init__(
        self,
        *,
        threshold: float = 0.8,
        first_point_threshold: float = 0.9,
        n_startup_trials: int = 3,
        n_warmup_points: int = 1,
        experience: ExperienceBuffer | None = None,
        use_prior: bool = True,
        noise_floor: float = 0.05,
        min_same_method: int = 10,
        min_loss_references: int = 10,
    ):
        owner = "MetaPEFTPruner"
        for name, value in (
            ("threshold", threshold),
            ("first_point_threshold", first_point_threshold),
        ):
            check_number(owner, name, value, 0, 1, low_open=True, high_open=True)
        check_int(owner, "n_startup_trials", n_startup_trials, 0)
        check_int(owner, "n_warmup_points", n_warmup_points, 0)
        check_number(owner, "noise_floor", noise_floor, 0, low_open=True)
        check_int(owner, "min_same_method", min_same_method)
        check_int(owner, "min_loss_references", min_loss_references, 2)
        self.threshold = threshold
        self.first_point_threshold = first_point_threshold
        self.n_startup_trials = n_startup_trials
        self.n_warmup_points = n_warmup_points
        self.experience = experience
        self.use_prior = use_prior
        self.noise_floor = noise_floor
        self.min_same_method = min_same_method
        self.min_loss_references = min_loss_references
        self._past_cache: tuple[Any, list[Reference]] = (None, [])

    # --- references ---------------------------------------------------------------------------
    def _references(
        self,
        study: Study,
        names: Sequence[str],
        quality: str,
        finished: Sequence[FrozenTrial] | None = None,
    ) -> tuple[list[Reference], list[Reference]]:
        """``(this study's finished runs, past runs)``, read once per decision."""
        if finished is None:
            finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        own = []
        for other in finished:
            values = schema.metrics_by_name(names, other.values)
            curve, total = other.user_attrs.get(schema.TRIAL_CURVE), total_steps(other)
            if curve and total and quality in values:
                own.append(
                    Reference(
                        curve,
                        total,
                        other.params.get("method"),
                        quality_score(quality, values[quality]),
                        values.get("train_seconds"),
                    )
                )
        task = study.user_attrs.get(schema.STUDY_TASK, {}).get("name")
        return own, self._past_references(task, quality)

    def _past_references(self, task: str | None, quality: str) -> list[Reference]:
        if self.experience is None and self.use_prior:
            self.experience = prior_experience() or ExperienceBuffer()
        if self.experience is None:
            return []
        # The experience rarely changes while a study runs: build its references once.
        key = (id(self.experience), task, quality, len(self.experience))
        if self._past_cache[0] != key:
            references = [
                Reference(
                    e.learning_curve,
                    int(e.hyperparameters["steps"]),
                    e.method_used.value,
                    quality_score(quality, e.performance_metrics[quality]),
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
        self, trial: FrozenTrial, quality: str, own: list[Reference], past: list[Reference]
    ) -> np.ndarray | None:
        curve = trial.user_attrs.get(schema.TRIAL_CURVE)
        total = total_steps(trial)
        key = schema.OBJECTIVE_SPECS[quality].curve_key
        if not curve or not total or curve[-1].get(key) is None:
            return None
        fraction = curve[-1]["step"] / total
        if quality == "accuracy" and curve[-1].get("val_loss") is not None:
            # The study's own runs: the loss-to-accuracy relation is the task's.
            known = [r for r in own if any(p.get("val_loss") is not None for p in r.curve)]
            if len(known) >= self.min_loss_references:
                return accuracies_from_val_loss(known, fraction, curve[-1]["val_loss"])
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
        return quality_score(quality, curve[-1][key]) + np.array(chosen)

    def _log_seconds(
        self, trial: FrozenTrial, own: list[Reference], past: list[Reference]
    ) -> tuple[float, float] | None:
        curve = [p for p in trial.user_attrs.get(schema.TRIAL_CURVE) or [] if p.get("step")]
        timed = [p for p in curve if p.get("train_seconds") is not None]
        total = total_steps(trial)
        if not timed or not total:
            return None
        last = timed[-1]
        if len(timed) >= 2:
            # Past the first point the step time is steady (measured: log error sd 0.05).
            previous = timed[-2]
            rate = (last["train_seconds"] - previous["train_seconds"]) / (
                last["step"] - previous["step"]
            )
            return math.log(last["train_seconds"] + rate * (total - last["step"])), LOG_TIME_SD
        fraction = last["step"] / total
        ratios = []
        # Times are this machine's: past runs only stand in while the study has few.
        for ref in own if len(own) >= 5 else own + past:
            at = interpolate(ref.curve, ref.total, fraction, "train_seconds")
            if at and ref.seconds:
                ratios.append(math.log(ref.seconds / at))
        base = math.log(last["train_seconds"])
        if len(ratios) < 3:
            return base - math.log(fraction), LINEAR_LOG_TIME_SD
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
        threshold = self.first_point_threshold if len(curve) == 1 else self.threshold
        if len(names) == 1:
            best = max(quality_score(names[0], t.value) for t in finished if t.value is not None)
            return outcome.probability_accuracy_at_most(best) > threshold
        return self.probability_dominated(outcome, finished, names) > threshold

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
            probability = outcome.probability_accuracy_at_most(
                quality_score(quality, values[quality])
            )
            if "train_seconds" in values:
                probability *= outcome.probability_at_least_as_slow(values["train_seconds"])
            largest = max(largest, probability)
        return largest
