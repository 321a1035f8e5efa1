"""What Reptile and MAML share: functional adaptation of any MLX module, evaluation, files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from ..atomic import atomic_write_with
from ..errors import MetaLearningError
from ..validation import check_int, check_number

Episode = tuple[mx.array, mx.array, mx.array, mx.array]
LossFn = Callable[[mx.array, mx.array], mx.array]
EVAL_STEPS = (1, 5)


def cross_entropy_loss(logits: mx.array, targets: mx.array) -> mx.array:
    """Mean cross-entropy; ``targets`` are class indices or one-hot/probability rows.

    Example:
        >>> float(cross_entropy_loss(mx.array([[0.0, 0.0]]), mx.array([1]))) > 0.69
        True
    """
    if targets.ndim == logits.ndim:
        return mx.mean(-mx.sum(targets * nn.log_softmax(logits, axis=-1), axis=-1))
    return mx.mean(nn.losses.cross_entropy(logits, targets))


def accuracy(logits: mx.array, targets: mx.array) -> float:
    """Fraction of rows whose arg-max matches ``targets`` (indices or one-hot).

    Example:
        >>> accuracy(mx.array([[0.1, 0.9], [0.8, 0.2]]), mx.array([1, 1]))
        0.5
    """
    if targets.ndim == logits.ndim:
        targets = mx.argmax(targets, axis=-1)
    return float(mx.mean(mx.argmax(logits, axis=-1) == targets))


class MetaLearner:
    """Base of :class:`ReptileLearner` and :class:`MAMLLearner`.

    The inner loop is plain SGD with ``inner_lr`` on the model's trainable parameters;
    the outer loop feeds the meta-gradient to Adam with ``outer_lr``.

    Example:
        >>> from metapeft_optuna.research import SimpleClassifier, cross_entropy_loss
        >>> learner = MetaLearner(SimpleClassifier(2), inner_lr=0.1)
        >>> x, y = mx.random.normal((8, 2)), mx.zeros((8,), dtype=mx.int32)
        >>> params = learner.adapt(x, y, cross_entropy_loss, steps=3)
        >>> sorted(params) == sorted(learner.parameters())
        True
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.01,
        outer_lr: float = 0.001,
        num_inner_steps: int = 5,
    ):
        owner = type(self).__name__
        check_number(owner, "inner_lr", inner_lr, 0, low_open=True)
        check_number(owner, "outer_lr", outer_lr, 0, low_open=True)
        check_int(owner, "num_inner_steps", num_inner_steps)
        self.model = model
        self.inner_lr = float(inner_lr)
        self.outer_lr = float(outer_lr)
        self.num_inner_steps = num_inner_steps
        self.meta_optimizer = optim.Adam(learning_rate=self.outer_lr)

    # --- functional helpers --------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """The current (meta-learned) trainable parameters, as a tree."""
        return self.model.trainable_parameters()

    def loss_at(
        self, params: dict[str, Any], x: mx.array, y: mx.array, loss_fn: LossFn
    ) -> mx.array:
        self.model.update(params)
        return loss_fn(self.model(x), y)

    def sgd_step(
        self, params: dict[str, Any], x: mx.array, y: mx.array, loss_fn: LossFn
    ) -> tuple[mx.array, dict[str, Any]]:
        # Not compiled: for the small networks meta-learned here, mx.compile's CPU kernel
        # JIT costs more than it saves.
        loss, grads = mx.value_and_grad(self.loss_at)(params, x, y, loss_fn)
        return loss, tree_map(lambda p, g: p - self.inner_lr * g, params, grads)

    def adapt(
        self,
        x: mx.array,
        y: mx.array,
        loss_fn: LossFn,
        steps: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """SGD-adapted parameters after ``steps`` (default ``num_inner_steps``) on (x, y).

        The model's own parameters are left unchanged.
        """
        theta = self.parameters()
        params = theta if params is None else params
        for _ in range(steps or self.num_inner_steps):
            _, params = self.sgd_step(params, x, y, loss_fn)
            mx.eval(params)
        self.model.update(theta)
        return params

    def _apply_meta_gradient(self, theta: dict[str, Any], meta_grad: dict[str, Any]) -> float:
        self.model.update(theta)
        self.meta_optimizer.update(self.model, meta_grad)
        new = self.parameters()
        mx.eval(new, self.meta_optimizer.state)
        diff = sum(
            float(mx.sum((a - b) ** 2))
            for (_, a), (_, b) in zip(tree_flatten(new), tree_flatten(theta))
        )
        return diff**0.5

    # --- the seed API ----------------------------------------------------------------------
    def meta_train_step(self, episodes: Sequence[Episode], loss_fn: LossFn) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, episodes: Sequence[Episode], loss_fn: LossFn) -> dict[str, float]:
        """Evaluate the meta-learned initialisation on validation tasks.

        Each episode adapts a copy of the parameters on its support set with SGD and
        scores the query set after 1 and 5 steps (and after ``num_inner_steps`` if more).

        Returns:
            ``{"step_0_acc", "step_1_acc", "step_5_acc", "final_loss"}``: mean query
            accuracy before/after 1 and 5 steps, and mean query loss after the last step.
        """
        if not episodes:
            raise MetaLearningError("evaluate() needs at least one episode.")
        theta = self.parameters()
        last = max(max(EVAL_STEPS), self.num_inner_steps)
        scores: dict[int, list[float]] = {0: [], **{s: [] for s in EVAL_STEPS}}
        losses = []
        for sx, sy, qx, qy in episodes:
            params = theta
            self.model.update(params)
            scores[0].append(accuracy(self.model(qx), qy))
            for step in range(1, last + 1):
                _, params = self.sgd_step(params, sx, sy, loss_fn)
                if step in scores:
                    self.model.update(params)
                    scores[step].append(accuracy(self.model(qx), qy))
            losses.append(float(self.loss_at(params, qx, qy, loss_fn)))
            self.model.update(theta)
        result = {f"step_{s}_acc": float(np.mean(v)) for s, v in scores.items()}
        result["final_loss"] = float(np.mean(losses))
        return result

    def save(self, path: str | Path) -> None:
        """Save the meta-learned parameters (and the learning rates) to an ``.npz`` file."""
        arrays = dict(tree_flatten(self.parameters()))
        arrays["__meta__.inner_lr"] = mx.array(self.inner_lr)
        arrays["__meta__.outer_lr"] = mx.array(self.outer_lr)
        arrays["__meta__.num_inner_steps"] = mx.array(self.num_inner_steps)
        atomic_write_with(path, lambda tmp: mx.savez(tmp, **arrays))

    def load(self, path: str | Path) -> None:
        """Load parameters saved by :meth:`save` into the model.

        Raises:
            MetaLearningError: The file is missing or does not fit this model.
        """
        path = Path(path)
        if not path.is_file():
            raise MetaLearningError(f"{path}: checkpoint not found.")
        loaded = {k: v for k, v in mx.load(str(path)).items() if not k.startswith("__meta__")}
        expected = dict(tree_flatten(self.parameters()))
        problems = sorted(set(expected) ^ set(loaded))
        problems += [k for k in expected if k in loaded and loaded[k].shape != expected[k].shape]
        if problems:
            raise MetaLearningError(
                f"{path}: checkpoint does not fit {type(self.model).__name__}"
                f" (mismatched parameters: {problems[:5]})."
            )
        self.model.update(tree_unflatten(list(loaded.items())))
        mx.eval(self.model.parameters())


def mean_tree(trees: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Leaf-wise mean of trees of the same structure (Reptile's average of adapted
    weights, MAML's of meta-gradients); ``trees`` must not be empty."""
    total = trees[0]
    for tree in trees[1:]:
        total = tree_map(lambda a, b: a + b, total, tree)
    return tree_map(lambda a: a / len(trees), total)
