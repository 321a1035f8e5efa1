"""``MetaPEFTSystem``: recommends a PEFT method and hyperparameters for a task, and learns
from every fine-tune."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from .. import schema
from ..peft import PEFTMethod
from ..tasks import TaskCharacteristics
from ..training.search_space import PEFTSearchSpace
from ..validation import check_int
from .experience import ExperienceBuffer, PEFTExperience
from .features import Standardizer, context_vector, target_vector, warn_outside_ranges
from .hpo import MetaHyperparameterOptimizer, Observations, Proposal
from .networks import MethodSelectionNetwork, TaskEmbeddingNetwork
from .persistence import load_system, save_system
from .recommendation import MethodRecommendation, honest, recommend
from .selection import (
    SelectorCalibration,
    calibrate_method_selector,
    fit_method_selector,
    selection_target,
    task_summary,
)
from .surrogate import PEFTSurrogate, SurrogateConfig


class MetaPEFTSystem:
    """Meta-learning system for PEFT method selection and configuration.

    Components: a :class:`TaskEmbeddingNetwork` and :class:`MethodSelectionNetwork`
    (which method wins on tasks like this one), a :class:`PEFTSurrogate` (how every
    configuration will score on accuracy, memory and time), a
    :class:`MetaHyperparameterOptimizer` (which configuration to try) and the
    :class:`ExperienceBuffer` it learns from.

    Args:
        search_space: The PEFT search space.
        embedding_dim: Size of the task embedding of the method selector.
        surrogate_config: Training settings of the surrogate.
        seed: Seeds every network and proposal.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.tasks import load_task
        >>> _, tokenizer, _ = load_model("tiny")
        >>> chars = TaskCharacteristics.from_task(load_task("parity@64"), tokenizer)
        >>> system = MetaPEFTSystem()  # no experience: a cold start
        >>> method, hyperparameters = system.predict_optimal_method(chars)
        >>> method.value, "cold start" in system.recommend(chars).reasoning
        ('lora', True)
    """

    def __init__(
        self,
        search_space: PEFTSearchSpace | None = None,
        *,
        embedding_dim: int = 32,
        surrogate_config: SurrogateConfig | None = None,
        seed: int = 0,
    ):
        check_int("MetaPEFTSystem", "embedding_dim", embedding_dim)
        check_int("MetaPEFTSystem", "seed", seed, 0)
        self.search_space = search_space or PEFTSearchSpace()
        self.methods = list(self.search_space.methods)
        self.embedding_dim = embedding_dim
        self.seed = seed
        mx.random.seed(seed)
        self.task_embedder = TaskEmbeddingNetwork(embedding_dim)
        self.method_selector = MethodSelectionNetwork(embedding_dim, len(self.methods))
        self.hyperparameter_optimizer = MetaHyperparameterOptimizer(self.search_space)
        self.experience_buffer = ExperienceBuffer()
        self.surrogate = PEFTSurrogate(
            self.search_space, surrogate_config or SurrogateConfig(seed=seed)
        )
        self.context_scaler_: Standardizer | None = None
        self.task_summaries_: list[dict[str, Any]] = []
        self.selector_calibration_ = SelectorCalibration()
        self.new_experiences_ = 0

    @property
    def is_fitted(self) -> bool:
        return self.surrogate.is_fitted and self.context_scaler_ is not None

    # --- learning ---------------------------------------------------------------------------
    def fit(self, buffer: ExperienceBuffer | None = None) -> MetaPEFTSystem:
        """(Re)train every component on ``buffer`` (default: the system's own buffer).

        A buffer without complete experiences leaves the system in its cold-start state.
        """
        if buffer is not None:
            self.experience_buffer = buffer
        groups = self.experience_buffer.by_task()
        self.new_experiences_ = 0
        if not groups:
            return self
        warn_outside_ranges(self.experience_buffer, self.search_space)
        self.task_summaries_ = [task_summary(k, g) for k, g in sorted(groups.items())]
        contexts = np.array([s["context"] for s in self.task_summaries_], dtype=np.float32)
        self.context_scaler_ = Standardizer().fit(contexts)
        self.surrogate.fit(self.experience_buffer)
        keys = sorted(groups)
        mx.random.seed(self.seed)
        self.task_embedder = TaskEmbeddingNetwork(self.embedding_dim)
        self.method_selector = MethodSelectionNetwork(self.embedding_dim, len(self.methods))
        scaled = self.context_scaler_.transform(contexts)
        labels = np.stack([selection_target(groups[k], self.methods) for k in keys])
        fit_method_selector(self.task_embedder, self.method_selector, scaled, labels)
        self.selector_calibration_ = calibrate_method_selector(
            scaled, labels, self.embedding_dim, self.seed
        )
        return self

    def update(self, experiences: Iterable[PEFTExperience]) -> int:
        """Learn from more experience incrementally (a study's storage, another user's
        export): the surrogate takes a few steps on the new experiences mixed with
        replayed old ones, and the source-task summaries (nearest tasks, seed
        configurations) are refreshed; the method selector keeps its training until the
        next :meth:`fit`. A system that is not fitted yet is fitted.

        Returns:
            How many experiences were new (duplicates by ``uid`` are skipped).
        """
        new = [e for e in experiences if self.experience_buffer.add(e)]
        if not new:
            return 0
        if not self.is_fitted:
            self.fit()
            return len(new)
        warn_outside_ranges(new, self.search_space)
        self.surrogate.partial_fit(new, self.experience_buffer)
        groups = self.experience_buffer.by_task()
        self.task_summaries_ = [task_summary(k, g) for k, g in sorted(groups.items())]
        return len(new)

    def learn_from_experience(
        self,
        task_characteristics: TaskCharacteristics,
        method_used: PEFTMethod | str,
        hyperparameters: dict[str, Any],
        performance_metrics: dict[str, float],
        *,
        model_info: dict[str, Any] | None = None,
        task_name: str = "",
        learning_curve: Sequence[dict[str, float]] = (),
        refit_every: int = 25,
    ) -> PEFTExperience:
        """Add one fine-tune's outcome and update the meta-model.

        The surrogate is updated incrementally right away (a few optimisation steps on
        the new experience mixed with replayed old ones); every ``refit_every`` new
        experiences, or on the first experience, everything is retrained.

        Args:
            task_characteristics: The task that was fine-tuned.
            method_used: The PEFT method.
            hyperparameters: Search-space parameters of the configuration.
            performance_metrics: Measured metrics by name (keys from ``schema.METRICS``;
                others are ignored).
        """
        method = PEFTMethod(method_used)
        params = {
            "method": method.value,
            **{k: v for k, v in hyperparameters.items() if k != "method"},
        }
        metrics = {k: performance_metrics[k] for k in schema.METRICS if k in performance_metrics}
        stamp = json.dumps([task_name, params, metrics, time.time_ns()], default=str)
        experience = PEFTExperience.measured(
            task_characteristics,
            params,
            metrics,
            model_info=model_info,
            task_name=task_name or f"task-{task_characteristics.to_vector().sum():.4f}",
            learning_curve=learning_curve,
            uid=hashlib.sha1(stamp.encode()).hexdigest()[:16],
            study="learn_from_experience",
        )
        self.experience_buffer.add(experience)
        self.new_experiences_ += 1
        if not self.is_fitted or self.new_experiences_ >= refit_every:
            self.fit()
        elif experience.complete:
            self.surrogate.partial_fit([experience], self.experience_buffer)
        return experience

    # --- prediction ------------------------------------------------------------------------
    def method_probabilities(self, context: np.ndarray) -> np.ndarray:
        """The method selector's calibrated probabilities.

        Args:
            context: ``(d,)`` raw context vector (``features.context_vector``).

        Returns:
            ``(len(self.methods),)`` probabilities in :attr:`methods` order, summing to
            1 (uniform in a cold start).
        """
        if self.context_scaler_ is None:
            return np.full(len(self.methods), 1.0 / len(self.methods))
        x = mx.array(self.context_scaler_.transform(context[None]))
        logits = np.array(self.method_selector(self.task_embedder(x)))
        return self.selector_calibration_.apply(logits)[0]

    def similar_tasks(self, context: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
        """The ``k`` source tasks nearest in standardised context space.

        Args:
            context: ``(d,)`` raw context vector.
            k: How many.

        Returns:
            Nearest first, each a task summary: ``{"name", "key"`` (task and model),
            ``"model", "trials", "best_quality"`` (method -> best quality: accuracy, or
            minus val_loss), ``"best_method", "distance"}`` (Euclidean, standardised);
            empty in a cold start.
        """
        if self.context_scaler_ is None or not self.task_summaries_:
            return []
        here = self.context_scaler_.transform(context[None])[0]
        rows = []
        for summary in self.task_summaries_:
            there = self.context_scaler_.transform(np.array(summary["context"])[None])[0]
            rows.append(
                {
                    **{k: v for k, v in summary.items() if k != "context"},
                    "distance": float(np.linalg.norm(here - there)),
                }
            )
        return sorted(rows, key=lambda r: r["distance"])[:k]

    def seed_configurations(
        self, context: np.ndarray, method: str | None = None, per_task: int = 2
    ) -> list[dict[str, Any]]:
        """Best configurations of the most similar source tasks (experience replay), as
        starting points for the optimizer's local search.

        Args:
            context: ``(d,)`` raw context vector.
            method: Only this method's configurations (None: any).
            per_task: How many from each of the 3 nearest tasks (best quality first).

        Returns:
            Search-space parameter dicts (``{"method", ...}``); empty in a cold start.
        """
        chosen: list[dict[str, Any]] = []
        groups = self.experience_buffer.by_task()
        for task in self.similar_tasks(context, k=3):
            rows = [
                e
                for e in groups.get(task["key"], [])
                if method is None or e.method_used.value == method
            ]
            best = sorted(rows, key=lambda e: -e.quality)[:per_task]
            chosen += [e.hyperparameters for e in best]
        return chosen

    # Recommend a method and configuration (recommendation.recommend; defined there to
    # keep this module small).
    recommend = recommend

    def predict_optimal_method(
        self, task_characteristics: TaskCharacteristics, model_info: dict[str, Any] | None = None
    ) -> tuple[PEFTMethod, dict[str, Any]]:
        """Predict the optimal PEFT method and its hyperparameters."""
        recommendation = self.recommend(task_characteristics, model_info)
        return recommendation.method, recommendation.hyperparameters

    # --- proposals for a study ---------------------------------------------------------------
    def portfolio(
        self,
        task_characteristics: TaskCharacteristics,
        model_info: dict[str, Any] | None,
        observations: Observations,
        n: int,
        *,
        seed: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[MethodRecommendation, list[Proposal]]:
        """The warm start of a new study: the recommendation (:meth:`recommend`), then
        proposals chosen by EHVI with it believed, so they spread along the predicted
        Pareto front. Only the objectives and methods of ``observations`` matter.

        Returns:
            ``(recommendation, n proposals)``; the recommendation is the first proposal
            unless ``observations.methods`` excludes its method.
        """
        recommendation = self.recommend(
            task_characteristics, model_info, seed=seed, objectives=observations.objectives
        )
        context = context_vector(task_characteristics, model_info)
        first = []
        if observations.methods is None or recommendation.method.value in observations.methods:
            encoded = self.search_space.encode(recommendation.params)[None]
            mean, std = self.surrogate.predict(context, encoded)
            why = (
                f"meta-model recommendation ({recommendation.method.value}, "
                f"confidence {recommendation.confidence:.2f})"
            )
            first = [Proposal(recommendation.params, mean[0], std[0], float("nan"), why)]
        rest = self.hyperparameter_optimizer.propose(
            self.surrogate,
            context,
            replace(observations, running=[p.params for p in first]),
            n=n - len(first),
            rng=rng,
            seeds=self.seed_configurations(context),
        )
        for proposal in rest:
            proposal.reason = "warm-start portfolio: " + proposal.reason
        return recommendation, [honest(self.experience_buffer, p, model_info) for p in first + rest]

    def propose(
        self,
        task_characteristics: TaskCharacteristics | None,
        model_info: dict[str, Any] | None,
        observations: Observations,
        *,
        rng: np.random.Generator | None = None,
        surrogate: PEFTSurrogate | None = None,
    ) -> Proposal:
        """The next configuration for a study, by EHVI (EI with one objective).

        Args:
            task_characteristics: The study's task (None: unknown, a cold start).
            model_info: The model's info dict.
            observations: The study so far.
            rng: Random generator.
            surrogate: The model to propose with. Default: the meta-model adapted to the
                study's finished trials, or a cold start (methods in turn at their
                defaults) when the system is not fitted.
        """
        context = None
        if task_characteristics is not None:
            context = context_vector(task_characteristics, model_info)
        if surrogate is None and self.is_fitted and context is not None:
            space = self.search_space
            surrogate = self.surrogate.adapt(
                context,
                np.stack([space.encode(p) for p in observations.params])
                if observations.params
                else np.zeros((0, space.dimension)),
                np.stack([target_vector(m) for m in observations.metrics])
                if observations.metrics
                else np.zeros((0, len(schema.METRICS))),
            )
        seeds = self.seed_configurations(context) if context is not None else []
        proposal = self.hyperparameter_optimizer.propose(
            surrogate, context, observations, rng=rng, seeds=seeds
        )[0]
        return honest(self.experience_buffer, proposal, model_info)

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, include_experience: bool = True) -> Path:
        """Save to a directory (JSON metadata + safetensors weights [+ experience]),
        replacing it atomically (:func:`~metapeft_optuna.meta.persistence.save_system`)."""
        return save_system(self, path, include_experience)

    @classmethod
    def load(cls, path: str | Path, search_space: PEFTSearchSpace | None = None) -> MetaPEFTSystem:
        """Load a system saved by :meth:`save`.

        Raises:
            MetaLearningError: Missing files, a newer format, or a different search space.
        """
        return load_system(cls, path, search_space)
