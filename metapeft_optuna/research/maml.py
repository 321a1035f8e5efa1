"""``MAMLLearner``: model-agnostic meta-learning (Finn et al., 2017), second order by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map

from ..errors import MetaLearningError
from ..meta._learner import Episode, LossFn, MetaLearner, mean_tree


class MAMLLearner(MetaLearner):
    """MAML: meta-gradient of the query loss after ``num_inner_steps`` SGD steps.

    With ``first_order=False`` (default) the meta-gradient differentiates through the
    inner SGD steps (second-order MAML, MLX differentiates ``mx.grad`` itself); with
    ``first_order=True`` inner gradients are treated as constants (FOMAML).

    Args:
        model: Neural network to meta-train.
        inner_lr: Task adaptation learning rate (default: 0.01).
        outer_lr: Meta-learning rate for Adam (default: 0.001).
        num_inner_steps: Steps per task adaptation (default: 5).
        first_order: Use the first-order approximation.

    Example:
        >>> from metapeft_optuna.research import SimpleClassifier, cross_entropy_loss
        >>> from metapeft_optuna.research import TaskConfig, TaskDistribution
        >>> dist = TaskDistribution([TaskConfig("t", "gaussian_mixture", 3, 4, 6, 12)], seed=0)
        >>> learner = MAMLLearner(SimpleClassifier(4, 16, 3), num_inner_steps=2)
        >>> out = learner.meta_train_step([dist.sample_episode()[1:]], cross_entropy_loss)
        >>> out["param_diff"] > 0
        True
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.01,
        outer_lr: float = 0.001,
        num_inner_steps: int = 5,
        first_order: bool = False,
    ):
        super().__init__(model, inner_lr, outer_lr, num_inner_steps)
        self.first_order = first_order

    def _query_loss_after_adaptation(
        self, theta: dict[str, Any], episode: Episode, loss_fn: LossFn
    ) -> tuple[mx.array, mx.array]:
        sx, sy, qx, qy = episode
        params = theta
        grad_fn = mx.grad(self.loss_at)
        for _ in range(self.num_inner_steps):
            grads = grad_fn(params, sx, sy, loss_fn)
            if self.first_order:
                grads = tree_map(mx.stop_gradient, grads)
            params = tree_map(lambda p, g: p - self.inner_lr * g, params, grads)
        support = mx.stop_gradient(self.loss_at(params, sx, sy, loss_fn))
        return self.loss_at(params, qx, qy, loss_fn), support

    def meta_train_step(self, episodes: Sequence[Episode], loss_fn: LossFn) -> dict[str, float]:
        """One MAML meta-update on a batch of tasks.

        Returns:
            ``{"query_loss", "support_loss", "param_diff"}`` (losses after adaptation).
        """
        if not episodes:
            raise MetaLearningError("meta_train_step() needs at least one episode.")
        theta = self.parameters()
        meta_value_and_grad = mx.value_and_grad(self._query_loss_after_adaptation)
        grads, query, support = [], [], []
        for episode in episodes:
            (q_loss, s_loss), grad = meta_value_and_grad(theta, episode, loss_fn)
            mx.eval(grad)
            grads.append(grad)
            query.append(float(q_loss))
            support.append(float(s_loss))
        diff = self._apply_meta_gradient(theta, mean_tree(grads))
        return {
            "query_loss": sum(query) / len(query),
            "support_loss": sum(support) / len(support),
            "param_diff": diff,
        }
