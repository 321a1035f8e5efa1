"""``PEFTSurrogate``: predicts a configuration's objectives (accuracy, log val_loss, log
memory, log time: :func:`~metapeft_optuna.meta.features.target_vector`) on a task.

Choice and why: an ensemble of small MLX networks (task embedding + configuration ->
three objectives). Each member is trained on a bootstrap of the source *tasks* (so
disagreement grows away from known tasks), first jointly on all their trials, then
meta-trained with Reptile so that a few SGD steps on a new task's first trials adapt
it (the inner loop at adaptation time is the one Reptile optimised for). The ensemble
spread, plus the members' residual noise, is the uncertainty. A deep-kernel GP would
give calibrated uncertainty too but costs O(n^3) per adaptation and meta-learns less
naturally; the ensemble adapts in milliseconds and parallels what the sampler needs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .. import schema
from ..errors import MetaLearningError, NotFittedError
from ..training.search_space import PEFTSearchSpace
from ..validation import check_int, check_number
from .experience import ExperienceBuffer
from .features import Standardizer, experience_arrays
from .networks import SurrogateNet, masked_mse
from .reptile import ReptileLearner

OBJECTIVES = len(schema.METRICS)
ADAPT_CLIP = 4.0  # standardised units: how far adaptation may move a prediction by SGD


@dataclass
class SurrogateConfig:
    """Training settings of :class:`PEFTSurrogate` (plain data, saved with the model).

    Example:
        >>> SurrogateConfig(members=3, reptile_iterations=0).members
        3
    """

    members: int = 5
    embedding_dim: int = 16
    hidden_dim: int = 64
    joint_steps: int = 400
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    reptile_iterations: int = 100
    reptile_tasks: int = 4
    support_size: int = 6
    inner_lr: float = 0.05
    inner_steps: int = 5
    outer_lr: float = 1e-3
    task_features: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "members",
            "embedding_dim",
            "hidden_dim",
            "joint_steps",
            "batch_size",
            "reptile_tasks",
            "support_size",
            "inner_steps",
        ):
            check_int("SurrogateConfig", name, getattr(self, name))
        check_int("SurrogateConfig", "reptile_iterations", self.reptile_iterations, 0)
        for name in ("learning_rate", "inner_lr", "outer_lr"):
            check_number("SurrogateConfig", name, getattr(self, name), 0, low_open=True)
        check_number("SurrogateConfig", "weight_decay", self.weight_decay, 0)


class PEFTSurrogate:
    """An ensemble surrogate over (task context, PEFT configuration).

    Args:
        search_space: Encodes configurations.
        config: Training settings.

    Example:
        >>> surrogate = PEFTSurrogate(PEFTSearchSpace())
        >>> surrogate.is_fitted
        False
    """

    def __init__(
        self, search_space: PEFTSearchSpace | None = None, config: SurrogateConfig | None = None
    ):
        self.space = search_space or PEFTSearchSpace()
        self.config = config or SurrogateConfig()
        self.members_: list[SurrogateNet] | None = None
        self.context_scaler_: Standardizer | None = None
        self.target_scaler_: Standardizer | None = None
        self.noise_: np.ndarray | None = None
        self.known_targets_: np.ndarray | None = None  # columns the experience measured
        # Per-objective shift (standardised units) that adapt() found for one study.
        self.offset_ = np.zeros(len(schema.METRICS), dtype=np.float32)

    @property
    def is_fitted(self) -> bool:
        return self.members_ is not None

    def _check(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("PEFTSurrogate is not fitted yet; call fit(buffer) first.")

    # --- inputs ----------------------------------------------------------------------------
    def _inputs(self, contexts: np.ndarray, configs: np.ndarray) -> mx.array:
        contexts = np.atleast_2d(contexts)
        if contexts.shape[0] == 1 and configs.shape[0] > 1:
            contexts = np.repeat(contexts, configs.shape[0], axis=0)
        scaled = self.context_scaler_.transform(contexts)
        if not self.config.task_features:
            scaled = np.zeros_like(scaled)
        return mx.array(np.concatenate([scaled, configs], axis=1).astype(np.float32))

    def _new_member(self, index: int) -> SurrogateNet:
        mx.random.seed(self.config.seed * 1000 + index)
        return SurrogateNet(
            self.context_scaler_.mean_.shape[0],
            self.space.dimension,
            self.config.embedding_dim,
            self.config.hidden_dim,
            OBJECTIVES,
        )

    # --- fitting ---------------------------------------------------------------------------
    def fit(self, buffer: ExperienceBuffer) -> PEFTSurrogate:
        """Train the ensemble on the complete experiences of ``buffer``.

        Raises:
            MetaLearningError: The buffer holds no complete experience.
        """
        experiences = buffer.complete()
        if not experiences:
            raise MetaLearningError("PEFTSurrogate.fit needs at least one complete experience.")
        contexts, configs, targets = experience_arrays(experiences, self.space)
        self.context_scaler_ = Standardizer().fit(contexts)
        self.target_scaler_ = Standardizer().fit(targets)
        self.known_targets_ = np.isfinite(targets).any(axis=0)
        inputs = np.asarray(self._inputs(contexts, configs))
        scaled_targets = self.target_scaler_.transform(targets)
        task_of = np.array([e.source_key for e in experiences])
        tasks = sorted(set(task_of))
        rng = np.random.default_rng(self.config.seed)
        members, residuals = [], []
        for index in range(self.config.members):
            # Bagging over source tasks: members disagree where the tasks disagree.
            chosen = (
                rng.choice(tasks, size=len(tasks), replace=True)
                if len(tasks) > 1
                else np.array(tasks)
            )
            rows = np.concatenate([np.flatnonzero(task_of == t) for t in chosen])
            member = self._new_member(index)
            self._train_joint(member, inputs[rows], scaled_targets[rows], task_of[rows], rng)
            if len(set(chosen)) > 1 and self.config.reptile_iterations:
                self._meta_train(member, inputs[rows], scaled_targets[rows], task_of[rows], rng)
            members.append(member)
            residuals.append(np.array(member(mx.array(inputs))) - scaled_targets)
        self.members_ = members
        squared = np.square(np.stack(residuals))[..., self.known_targets_]
        self.noise_ = np.full(OBJECTIVES, np.nan, dtype=np.float32)
        self.noise_[self.known_targets_] = np.sqrt(np.nanmean(squared, axis=(0, 1)))
        return self

    def partial_fit(
        self,
        experiences: list,
        buffer: ExperienceBuffer,
        steps: int = 30,
        rng: np.random.Generator | None = None,
    ) -> PEFTSurrogate:
        """Incremental update: a few steps on new experiences mixed with replayed ones.

        The standardisation and the ensemble are kept; call :meth:`fit` to retrain.
        """
        self._check()
        rng = rng or np.random.default_rng(self.config.seed)
        replay = buffer.sample(self.config.batch_size, rng) if buffer.complete() else []
        batch = [e for e in experiences if e.complete] + replay
        if not batch:
            return self
        contexts, configs, targets = experience_arrays(batch, self.space)
        x = np.asarray(self._inputs(contexts, configs))
        y = self.target_scaler_.transform(targets)
        task_of = np.array([e.source_key for e in batch])
        for member in self.members_:
            self._train_joint(member, x, y, task_of, rng, steps)
        return self

    def _train_joint(
        self,
        member: SurrogateNet,
        x: np.ndarray,
        y: np.ndarray,
        task_of: np.ndarray,
        rng: np.random.Generator,
        steps: int | None = None,
    ) -> None:
        cfg = self.config
        optimizer = optim.AdamW(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay)
        loss_and_grad = nn.value_and_grad(member, lambda m, a, b: masked_mse(m(a), b))

        def step(a: mx.array, b: mx.array) -> None:
            # Not compiled: for networks this small, mx.compile's CPU JIT costs more.
            _, grads = loss_and_grad(member, a, b)
            optimizer.update(member, grads)
            mx.eval(member.state, optimizer.state)

        # Task-balanced replay: each batch draws tasks uniformly, then one of their trials.
        groups = [np.flatnonzero(task_of == t) for t in np.unique(task_of)]
        for _ in range(steps or cfg.joint_steps):
            picks = rng.integers(len(groups), size=cfg.batch_size)
            rows = np.array([groups[g][rng.integers(len(groups[g]))] for g in picks])
            step(mx.array(x[rows]), mx.array(y[rows]))

    def _meta_train(
        self,
        member: SurrogateNet,
        x: np.ndarray,
        y: np.ndarray,
        task_of: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        cfg = self.config
        learner = ReptileLearner(member, cfg.inner_lr, cfg.outer_lr, cfg.inner_steps)
        groups = [np.flatnonzero(task_of == t) for t in np.unique(task_of)]
        groups = [g for g in groups if len(g) > 1]
        for _ in range(cfg.reptile_iterations):
            episodes = []
            for g in rng.choice(
                len(groups), size=min(cfg.reptile_tasks, len(groups)), replace=False
            ):
                rows = rng.permutation(groups[g])
                k = min(cfg.support_size, len(rows) - 1)
                s, q = rows[:k], rows[k:]
                episodes.append((mx.array(x[s]), mx.array(y[s]), mx.array(x[q]), mx.array(y[q])))
            learner.meta_train_step(episodes, masked_mse)

    # --- adaptation and prediction -----------------------------------------------------------
    def adapt(
        self,
        context: np.ndarray,
        configs: np.ndarray,
        targets: np.ndarray,
        steps: int | None = None,
    ) -> PEFTSurrogate:
        """A copy adapted to one task's observed trials (SGD, as in meta-training).

        Args:
            context: The task's raw context vector.
            configs: Encoded configurations of its finished trials, ``(n, dimension)``.
            targets: Their target vectors, ``(n, len(schema.METRICS))`` (NaN where
                unknown).
            steps: SGD steps (default: the Reptile inner-loop length, doubled).
        """
        self._check()
        adapted = copy.copy(self)
        if len(configs) == 0:
            return adapted
        x = self._inputs(context, np.asarray(configs, dtype=np.float32))
        y = self.target_scaler_.transform(np.asarray(targets, dtype=np.float64))
        y = np.where(np.isfinite(y), y, np.nan)  # an infinite value says nothing: masked
        # Robust to any scale: a study far from the experience (a faster machine, a larger
        # model) first shifts each objective by the median gap between its values and the
        # prediction; SGD then adapts to what is left, clipped, so it cannot diverge.
        unadapted = np.stack([np.array(m(x)) for m in self.members_]).mean(axis=0)
        gaps = y - unadapted
        known = ~np.isnan(gaps).all(axis=0)
        offset = np.zeros(y.shape[1], dtype=np.float32)
        offset[known] = np.nanmedian(gaps[:, known], axis=0)
        adapted.offset_ = self.offset_ + offset
        residual = mx.array(np.clip(y - offset, -ADAPT_CLIP, ADAPT_CLIP).astype(np.float32))
        steps = steps or 2 * self.config.inner_steps
        members = []
        for member in self.members_:
            clone = self._clone(member)
            learner = ReptileLearner(clone, self.config.inner_lr, self.config.outer_lr, steps)
            clone.update(learner.adapt(x, residual, masked_mse))
            weights = tree_flatten(clone.parameters())
            finite = all(np.isfinite(np.array(v)).all() for _, v in weights)
            members.append(clone if finite else member)  # a diverged member stays as it was
        adapted.members_ = members
        return adapted

    def _clone(self, member: SurrogateNet) -> SurrogateNet:
        clone = SurrogateNet(
            member.context_dim,
            self.space.dimension,
            self.config.embedding_dim,
            self.config.hidden_dim,
            OBJECTIVES,
        )
        clone.update(tree_unflatten(tree_flatten(member.parameters())))
        return clone

    def predict(self, context: np.ndarray, configs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the target vector for each config.

        Args:
            context: Raw context vector of the task (or one per config).
            configs: Encoded configurations, ``(n, dimension)``.

        Returns:
            ``(mean, std)``, each ``(n, len(schema.METRICS))``, in target units (see
            :func:`~metapeft_optuna.meta.features.target_vector`); NaN in the columns of
            objectives no experience measured.
        """
        self._check()
        x = self._inputs(context, np.asarray(configs, dtype=np.float32))
        outputs = np.stack([np.array(member(x)) for member in self.members_])
        mean = outputs.mean(axis=0) + self.offset_
        std = np.sqrt(outputs.var(axis=0) + self.noise_**2)  # NaN where unknown
        mean = np.where(self.known_targets_, self.target_scaler_.inverse_transform(mean), np.nan)
        return mean, self.target_scaler_.inverse_scale(std)

    # --- persistence -----------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, mx.array]]:
        """``(json-able metadata, arrays)`` for saving."""
        self._check()
        meta = {
            "config": asdict(self.config),
            "methods": list(self.space.methods),
            "context_scaler": self.context_scaler_.to_dict(),
            "target_scaler": self.target_scaler_.to_dict(),
            "noise": self.noise_.tolist(),
            "targets": [n for n, k in zip(schema.METRICS, self.known_targets_) if k],
            "context_dim": int(self.context_scaler_.mean_.shape[0]),
        }
        arrays = {
            f"member{i}.{k}": v
            for i, m in enumerate(self.members_)
            for k, v in tree_flatten(m.parameters())
        }
        return meta, arrays

    @classmethod
    def from_state(
        cls, meta: dict[str, Any], arrays: dict[str, mx.array], search_space: PEFTSearchSpace
    ) -> PEFTSurrogate:
        if "targets" not in meta:
            raise MetaLearningError(
                "this meta-model was saved before objectives had names (3 targets, accuracy "
                "only); retrain it on its experience with `metapeft prior train`."
            )
        surrogate = cls(search_space, SurrogateConfig(**meta["config"]))
        surrogate.known_targets_ = np.array([n in meta["targets"] for n in schema.METRICS])
        surrogate.context_scaler_ = Standardizer.from_dict(meta["context_scaler"])
        surrogate.target_scaler_ = Standardizer.from_dict(meta["target_scaler"])
        surrogate.noise_ = np.array(meta["noise"], dtype=np.float32)
        members = []
        for i in range(surrogate.config.members):
            prefix = f"member{i}."
            member = surrogate._new_member(i)
            member.update(
                tree_unflatten(
                    [(k[len(prefix) :], v) for k, v in arrays.items() if k.startswith(prefix)]
                )
            )
            members.append(member)
        surrogate.members_ = members
        return surrogate
