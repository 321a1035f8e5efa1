"""``BaselineComparison``: meta-learned initialisation vs standard fine-tuning, with a test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from scipy import stats

from ..errors import MetaLearningError
from ..meta._learner import Episode, MetaLearner, accuracy, cross_entropy_loss
from ..validation import check_int


def _sgd_learner(model: nn.Module, lr: float) -> MetaLearner:
    # The learner's functional SGD helpers, used here without any meta-training.
    return MetaLearner(model, inner_lr=lr)


def _k_shot(sx: mx.array, sy: mx.array, k: int) -> tuple[mx.array, mx.array]:
    """Up to ``k`` support examples per class (all of them when there are fewer)."""
    labels = np.array(sy)
    keep = np.concatenate([np.flatnonzero(labels == c)[:k] for c in np.unique(labels)])
    keep.sort()
    index = mx.array(keep)
    return sx[index], sy[index]


class BaselineComparison:
    """Compare meta-learning with standard fine-tuning.

    Provides the standard fine-tuning baseline, few-shot comparisons at several shot
    sizes, adaptation-speed curves and a paired significance test.

    Example:
        >>> from metapeft_optuna.research import SimpleClassifier
        >>> x, y = mx.random.normal((40, 2)), (mx.random.normal((40,)) > 0).astype(mx.int32)
        >>> out = BaselineComparison.evaluate_standard_finetuning(
        ...     SimpleClassifier(2), (x[:30], y[:30]), (x[30:], y[30:]), num_steps=10)
        >>> len(out["learning_curve"])
        10
    """

    @staticmethod
    def evaluate_standard_finetuning(
        model: nn.Module,
        train_data: tuple[mx.array, mx.array],
        test_data: tuple[mx.array, mx.array],
        num_steps: int = 100,
        lr: float = 0.01,
    ) -> dict[str, Any]:
        """Fine-tune ``model`` with full-batch SGD (no meta-learning) and score it.

        The model's parameters are restored afterwards.

        Returns:
            ``{"learning_curve": [test accuracy after each step], "train_losses": [...],
            "final_acc", "final_loss", "initial_acc"}``.
        """
        check_int("BaselineComparison", "num_steps", num_steps, error=MetaLearningError)
        learner = _sgd_learner(model, lr)
        (x, y), (tx, ty) = train_data, test_data
        theta = learner.parameters()
        params = theta
        initial = accuracy(model(tx), ty)
        curve, losses = [], []
        for _ in range(num_steps):
            loss, params = learner.sgd_step(params, x, y, cross_entropy_loss)
            mx.eval(params)
            model.update(params)
            curve.append(accuracy(model(tx), ty))
            losses.append(float(loss))
        final_loss = float(cross_entropy_loss(model(tx), ty))
        model.update(theta)
        return {
            "learning_curve": curve,
            "train_losses": losses,
            "initial_acc": initial,
            "final_acc": curve[-1],
            "final_loss": final_loss,
        }

    @staticmethod
    def compare_few_shot_performance(
        meta_learned_model: nn.Module,
        standard_model: nn.Module,
        episodes: Sequence[Episode],
        k_shots: Sequence[int] = (1, 5, 10),
        num_steps: int = 5,
        lr: float = 0.01,
    ) -> dict[int, dict[str, float]]:
        """Compare meta-learning vs a baseline initialisation on few-shot tasks.

        For each episode and shot size ``k``, both models are adapted with ``num_steps``
        SGD steps on up to ``k`` support examples per class and scored on the query set.

        Returns:
            ``{k: {"meta_acc", "baseline_acc", "improvement", "meta_std", "baseline_std",
            "p_value", "t_statistic", "episodes"}}``; ``p_value`` comes from a paired
            t-test over episodes (1.0 when the two models never differ).
        """
        if not episodes:
            raise MetaLearningError("compare_few_shot_performance() needs episodes.")
        learners = {
            "meta": _sgd_learner(meta_learned_model, lr),
            "baseline": _sgd_learner(standard_model, lr),
        }
        results: dict[int, dict[str, float]] = {}
        for k in k_shots:
            scores: dict[str, list[float]] = {"meta": [], "baseline": []}
            for sx, sy, qx, qy in episodes:
                kx, ky = _k_shot(sx, sy, k)
                for name, learner in learners.items():
                    theta = learner.parameters()
                    params = learner.adapt(kx, ky, cross_entropy_loss, steps=num_steps)
                    learner.model.update(params)
                    scores[name].append(accuracy(learner.model(qx), qy))
                    learner.model.update(theta)
            meta, base = np.array(scores["meta"]), np.array(scores["baseline"])
            if np.allclose(meta, base):
                t_stat, p_value = 0.0, 1.0
            else:
                t_stat, p_value = stats.ttest_rel(meta, base)
            results[k] = {
                "meta_acc": float(meta.mean()),
                "baseline_acc": float(base.mean()),
                "improvement": float(meta.mean() - base.mean()),
                "meta_std": float(meta.std()),
                "baseline_std": float(base.std()),
                "t_statistic": float(t_stat),
                "p_value": float(p_value),
                "episodes": len(episodes),
            }
        return results
