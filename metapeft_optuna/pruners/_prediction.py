"""What the pruner predicts from a partial learning curve: curve interpolation, the
finished runs it compares with, and the predicted outcome of a running trial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial
from scipy.special import ndtr
from sklearn.isotonic import IsotonicRegression

from .. import schema

# Log error (sd) of the final training time predicted from the rate between the last two
# curve points, and from the first point alone by linear extrapolation (it also pays for
# compiling the step): 0.05 and 0.32, measured on the meta-dataset (docs/benchmarks.md).
LOG_TIME_SD = 0.05
LINEAR_LOG_TIME_SD = 0.3


def total_steps(trial: FrozenTrial) -> int | None:
    """The training steps a trial was configured for (its ``steps`` parameter, or the
    hyperparameters ``PEFTObjective`` recorded); None when it has neither."""
    steps = trial.params.get("steps") or (
        trial.user_attrs.get(schema.TRIAL_HYPERPARAMETERS) or {}
    ).get("steps")
    return int(steps) if steps else None


def interpolate(
    curve: Sequence[dict[str, Any]], total: int, fraction: float, key: str
) -> float | None:
    """A learning curve's ``key`` at ``fraction`` of ``total`` steps, linear between its
    points (held flat beyond them); None when no point records ``key``."""
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
    value = interpolate(curve, total, fraction, spec.curve_key)
    return None if value is None else -spec.sign * value


def quality_score(quality: str, value: float) -> float:
    """A quality objective's value as a score where higher is better."""
    return -schema.OBJECTIVE_SPECS[quality].sign * value


@dataclass(frozen=True)
class Reference:
    """A finished run whose curve shows how curves go on: curve, steps, method, finals
    (``final``: the quality score, higher is better)."""

    curve: Sequence[dict[str, Any]]
    total: int
    method: str | None
    final: float
    seconds: float | None


def accuracies_from_val_loss(
    references: Sequence[Reference], fraction: float, val_loss: float
) -> np.ndarray:
    """Final accuracies predicted from a curve's validation loss at ``fraction`` of
    training, as a mixture: an isotonic (decreasing) fit of the references' final
    accuracy on their own validation loss at that fraction, plus each reference's
    leave-one-out residual (so a relation that some runs break stays uncertain).

    Why: a curve point's accuracy on a few dozen validation examples is noise-bound,
    while its loss ranks the final accuracies of one task's runs far better (first curve
    points, each run left out of its task's others: RMSE 0.084 against 0.110 on the
    first meta-dataset, 0.133 against 0.177 on v2's first 338 trials; ``benchmarks/pruners.py``).

    Args:
        references: Finished runs of the same task (at least 2).
        fraction: The running curve's last step over its total steps.
        val_loss: The running curve's validation loss there.

    Returns:
        Shape ``(len(references),)``: the predicted final accuracies.
    """
    x = np.array([interpolate(r.curve, r.total, fraction, "val_loss") for r in references])
    y = np.array([r.final for r in references])
    residuals = [
        y[i] - _isotonic(np.delete(x, i), np.delete(y, i)).predict(x[i : i + 1])[0]
        for i in range(len(x))
    ]
    return _isotonic(x, y).predict([val_loss])[0] + np.array(residuals)


def _isotonic(x: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(increasing=False, out_of_bounds="clip").fit(x, y)


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
