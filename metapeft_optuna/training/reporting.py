"""Reporting learning curves from any study: Optuna's ``Trial.report`` and
``Trial.should_prune`` raise ``NotImplementedError`` in multi-objective studies."""

from __future__ import annotations

import time
from typing import Any

import optuna

from .. import schema


def report(trial: optuna.Trial, point: dict[str, Any], metric: str = "val_metric") -> None:
    """Store one learning-curve point on ``trial`` (any number of objectives).

    The curve lives in the ``learning_curve`` user attribute, so it is visible in
    optuna-dashboard and becomes experience even if the trial is pruned. In a
    single-objective study ``point[metric]`` is also passed to ``trial.report``.

    Args:
        trial: The running trial.
        point: ``{"step", metric, ...}`` (a ``CurvePoint.to_dict()``).
        metric: The key holding the value that single-objective pruners compare.
    """
    curve = list(trial.user_attrs.get(schema.TRIAL_CURVE) or [])
    curve.append(dict(point))
    trial.set_user_attr(schema.TRIAL_CURVE, curve)
    if len(trial.study.directions) == 1:
        trial.report(float(point[metric]), int(point["step"]))


def should_prune(trial: optuna.Trial) -> bool:
    """Ask the study's pruner about ``trial``, in single- and multi-objective studies.

    In multi-objective studies only pruners that declare ``supports_multi_objective``
    (like :class:`~metapeft_optuna.MetaPEFTPruner`) are consulted; others never prune
    there, instead of raising.
    """
    if len(trial.study.directions) == 1:
        return trial.should_prune()
    pruner = trial.study.pruner
    if not getattr(pruner, "supports_multi_objective", False):
        return False
    frozen = trial.study._storage.get_trial(trial._trial_id)
    return bool(pruner.prune(trial.study, frozen))


def prune_if_due(trial: optuna.Trial, step: int, steps: int, deadline: float | None) -> None:
    """Prune ``trial`` at its learning-curve point after ``step`` of ``steps``: when the
    ``deadline`` (a ``time.time()``; None: none) has passed and this is not the last point
    (training done, only the evaluation left), with the reason in the ``prune_reason``
    user attribute; else when the study's pruner decides (:func:`should_prune`).

    Raises:
        optuna.TrialPruned: To stop the trial.
    """
    if deadline is not None and time.time() > deadline and step < steps:
        trial.set_user_attr(schema.TRIAL_PRUNE_REASON, "the study's deadline passed")
        raise optuna.TrialPruned(f"deadline passed at step {step}")
    if should_prune(trial):
        raise optuna.TrialPruned(f"pruned at step {step}")
