"""``ReptileLearner``: first-order meta-learning of an initialisation (Nichol et al., 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
from mlx.utils import tree_map

from ..errors import MetaLearningError
from ._learner import Episode, LossFn, MetaLearner, mean_tree


class ReptileLearner(MetaLearner):
    """Reptile meta-learning algorithm implementation.

    Learns an initialisation that adapts quickly to new tasks: for each task, run
    ``num_inner_steps`` of SGD (``inner_lr``) from the current parameters ``theta`` to
    get ``phi``; then move ``theta`` towards the mean ``phi``. As the paper suggests, the
    direction ``theta - mean(phi)`` is used as a gradient for Adam (``outer_lr``).

    Args:
        model: Neural network to meta-train (any MLX module; its trainable parameters
            are meta-learned).
        inner_lr: Task adaptation learning rate (default: 0.01).
        outer_lr: Meta-learning rate (default: 0.001).
        num_inner_steps: Steps per task adaptation (default: 5).

    Example:
        >>> from metapeft_optuna.research import SimpleClassifier, cross_entropy_loss
        >>> from metapeft_optuna.research import TaskConfig, TaskDistribution
        >>> dist = TaskDistribution([TaskConfig(f"t{i}", "linear_classification", 2, 2, 5, 20)
        ...                          for i in range(4)], seed=0)
        >>> model = SimpleClassifier(input_dim=2, hidden_dim=64, num_classes=2)
        >>> learner = ReptileLearner(model, inner_lr=0.01, outer_lr=0.001)
        >>> episodes = [dist.sample_episode()[1:] for _ in range(4)]
        >>> sorted(learner.meta_train_step(episodes, cross_entropy_loss))
        ['param_diff', 'query_loss', 'support_loss']
    """

    def meta_train_step(self, episodes: Sequence[Episode], loss_fn: LossFn) -> dict[str, float]:
        """Perform one meta-training step on a batch of tasks.

        Args:
            episodes: ``(support_x, support_y, query_x, query_y)`` tuples.
            loss_fn: ``loss_fn(model_output, targets) -> scalar``.

        Returns:
            ``{"query_loss", "support_loss", "param_diff"}``: mean query and support loss
            after adaptation, and the L2 norm of the parameter update.
        """
        if not episodes:
            raise MetaLearningError("meta_train_step() needs at least one episode.")
        theta = self.parameters()
        adapted, support, query = [], [], []
        for sx, sy, qx, qy in episodes:
            phi = self.adapt(sx, sy, loss_fn, params=theta)
            support.append(float(self.loss_at(phi, sx, sy, loss_fn)))
            query.append(float(self.loss_at(phi, qx, qy, loss_fn)))
            adapted.append(phi)
        direction = tree_map(lambda t, p: t - p, theta, mean_tree(adapted))
        diff = self._apply_meta_gradient(theta, direction)
        mx.eval(self.model.parameters())
        return {
            "query_loss": sum(query) / len(query),
            "support_loss": sum(support) / len(support),
            "param_diff": diff,
        }
