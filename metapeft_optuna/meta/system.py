"""``MetaPEFTSystem``: recommends a PEFT method and hyperparameters for a task, and learns
from every fine-tune."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .. import __version__, schema
from ..atomic import atomic_directory
from ..errors import MetaLearningError
from ..peft import PEFTMethod
from ..tasks import TaskCharacteristics
from ..training.search_space import PEFTSearchSpace
from .experience import ExperienceBuffer, PEFTExperience
from .features import Standardizer, context_vector
from .hpo import MetaHyperparameterOptimizer, Proposal, default_params
from .networks import MethodSelectionNetwork, TaskEmbeddingNetwork
from .recommendation import MethodRecommendation, explain
from .selection import (
    SelectorCalibration,
    calibrate_method_selector,
    fit_method_selector,
    selection_target,
    task_summary,
)
from .surrogate import PEFTSurrogate, SurrogateConfig

FORMAT_VERSION = 1
META_FILE = "meta_model.json"
WEIGHTS_FILE = "weights.safetensors"
EXPERIENCE_FILE = "experience.jsonl"


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
        experience = PEFTExperience(
            task_embedding=task_characteristics.to_vector(),
            method_used=method,
            hyperparameters=params,
            performance_metrics=metrics,
            training_time=metrics.get("train_seconds"),
            memory_usage=metrics.get("peak_memory_mb"),
            task_name=task_name or f"task-{task_characteristics.to_vector().sum():.4f}",
            task_characteristics=task_characteristics,
            model_info=dict(model_info or {}),
            learning_curve=tuple(learning_curve),
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
        """The selector's calibrated probability for each method (uniform in a cold start)."""
        if self.context_scaler_ is None:
            return np.full(len(self.methods), 1.0 / len(self.methods))
        x = mx.array(self.context_scaler_.transform(context[None]))
        logits = np.array(self.method_selector(self.task_embedder(x)))
        return self.selector_calibration_.apply(logits)[0]

    def similar_tasks(self, context: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
        """The ``k`` source tasks nearest in (standardised) meta-feature space."""
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

    def best_per_method(
        self, context: np.ndarray, rng: np.random.Generator, quality: str = "accuracy"
    ) -> dict[str, Proposal]:
        """The configuration with the best predicted ``quality`` for every method."""
        out = {}
        for method in self.methods:
            seeds = self.seed_configurations(context, method)
            proposal = self.hyperparameter_optimizer.propose(
                self.surrogate,
                context,
                [],
                [],
                n=1,
                rng=rng,
                seeds=seeds,
                objectives=(quality,),
                methods=[method],
            )
            out[method] = proposal[0]
        return out

    def seed_configurations(
        self, context: np.ndarray, method: str | None = None, per_task: int = 2
    ) -> list[dict[str, Any]]:
        """Best configurations of the most similar source tasks (experience replay), as
        starting points for the optimizer's local search."""
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

    def recommend(
        self,
        task_characteristics: TaskCharacteristics,
        model_info: dict[str, Any] | None = None,
        *,
        num_layers: int | None = None,
        seed: int | None = None,
        objectives: Sequence[str] = schema.DEFAULT_OBJECTIVES,
    ) -> MethodRecommendation:
        """Recommend a method and configuration, with expected performance and reasoning.

        The method probabilities say which method's best configuration is likely best on
        the quality objective of ``objectives`` (``accuracy`` or ``val_loss``; where no
        experience measured it, predicted accuracy, and the reasoning says so). With
        cost objectives too, the configuration is the knee of the predicted Pareto
        front over all methods (good quality at low cost); with quality alone, the
        likeliest method's best predicted configuration.
        """
        objectives = schema.check_objectives(objectives)
        context = context_vector(task_characteristics, model_info)
        layers = num_layers or (model_info or {}).get("num_layers") or 30
        rng = np.random.default_rng(self.seed if seed is None else seed)
        if not self.is_fitted:
            method = "lora" if "lora" in self.methods else self.methods[0]
            params = self.search_space.sample_completion(default_params(method), rng)
            _, hp = self.search_space.to_hyperparameters(params, layers)
            uniform = 1.0 / len(self.methods)
            return MethodRecommendation(
                PEFTMethod(method),
                uniform,
                hp,
                {},
                "cold start: no experience yet, so every method is equally likely "
                f"(p={uniform:.2f} each) and uncertainty is unbounded; starting with "
                f"{method} at its default settings. Every finished trial becomes experience.",
                params,
                dict.fromkeys(self.methods, uniform),
                [],
            )
        selector = self.method_probabilities(context)
        quality = schema.quality_objective(objectives) or "accuracy"
        column = schema.METRICS.index(quality)
        if not self.surrogate.known_targets_[column]:
            quality, column = "accuracy", schema.METRICS.index("accuracy")
            objectives = tuple(quality if o in schema.QUALITY_METRICS else o for o in objectives)
        best = self.best_per_method(context, rng, quality)
        # Probability each method's best configuration has the top quality, from the
        # surrogate's predictive distribution, combined with the selector's opinion.
        sign = -schema.OBJECTIVE_SPECS[quality].sign  # higher is better
        means = np.array([sign * best[m].mean[column] for m in self.methods])
        stds = np.array([best[m].std[column] for m in self.methods])
        draws = rng.normal(means, stds, size=(2000, len(self.methods)))
        surrogate_p = np.bincount(draws.argmax(axis=1), minlength=len(self.methods)) / 2000
        combined = selector * (surrogate_p + 1e-3)
        combined /= combined.sum()
        likeliest = self.methods[int(np.argmax(combined))]
        proposal = best[likeliest]
        if len(objectives) > 1:
            proposal = self.hyperparameter_optimizer.propose(
                self.surrogate,
                context,
                [],
                [],
                rng=rng,
                seeds=self.seed_configurations(context),
                objectives=objectives,
            )[0]
        pick = proposal.params["method"]
        _, hp = self.search_space.to_hyperparameters(proposal.params, layers)
        similar = self.similar_tasks(context)
        index = self.methods.index(pick)
        return MethodRecommendation(
            PEFTMethod(pick),
            float(combined[index]),
            hp,
            proposal.prediction(),
            explain(
                pick,
                float(selector[index]),
                float(surrogate_p[index]),
                proposal.prediction(),
                similar,
                len(self.experience_buffer),
                len(self.task_summaries_),
                quality,
                knee_of=objectives if len(objectives) > 1 else (),
                likeliest=likeliest,
            ),
            proposal.params,
            dict(zip(self.methods, combined.round(4).tolist())),
            similar,
        )

    def predict_optimal_method(
        self, task_characteristics: TaskCharacteristics, model_info: dict[str, Any] | None = None
    ) -> tuple[PEFTMethod, dict[str, Any]]:
        """Predict the optimal PEFT method and its hyperparameters."""
        recommendation = self.recommend(task_characteristics, model_info)
        return recommendation.method, recommendation.hyperparameters

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, include_experience: bool = True) -> Path:
        """Save to a directory (JSON metadata + safetensors weights [+ experience]),
        replacing it atomically."""
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "methods": self.methods,
            "feature_names": self.search_space.feature_names(),
            "embedding_dim": self.embedding_dim,
            "seed": self.seed,
            "task_summaries": self.task_summaries_,
            "fitted": self.is_fitted,
            "surrogate_config": asdict(self.surrogate.config),
        }
        arrays: dict[str, mx.array] = {}
        if self.is_fitted:
            surrogate_meta, surrogate_arrays = self.surrogate.state()
            meta["surrogate"] = surrogate_meta
            meta["context_scaler"] = self.context_scaler_.to_dict()
            meta["selector_calibration"] = self.selector_calibration_.to_dict()
            arrays.update({f"surrogate.{k}": v for k, v in surrogate_arrays.items()})
            for name, net in (
                ("task_embedder", self.task_embedder),
                ("method_selector", self.method_selector),
            ):
                arrays.update({f"{name}.{k}": v for k, v in tree_flatten(net.parameters())})
        with atomic_directory(path) as tmp:
            (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
            if arrays:
                mx.save_safetensors(str(tmp / WEIGHTS_FILE), arrays)
            if include_experience:
                self.experience_buffer.export_jsonl(tmp / EXPERIENCE_FILE)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, search_space: PEFTSearchSpace | None = None) -> MetaPEFTSystem:
        """Load a system saved by :meth:`save`.

        Raises:
            MetaLearningError: Missing files, a newer format, or a different search space.
        """
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise MetaLearningError(f"{meta_path}: not found; is {path} a saved meta-model?")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise MetaLearningError(
                f"{path}: format_version {meta['format_version']} is newer "
                f"than this package reads ({FORMAT_VERSION}); upgrade it."
            )
        space = search_space or PEFTSearchSpace(methods=meta["methods"])
        if space.feature_names() != meta["feature_names"]:
            raise MetaLearningError(
                f"{path}: the meta-model was trained for another search "
                "space (its encoded features differ); retrain it with "
                "`metapeft prior train`."
            )
        system = cls(
            space,
            embedding_dim=meta["embedding_dim"],
            surrogate_config=SurrogateConfig(**meta["surrogate_config"]),
            seed=meta["seed"],
        )
        system.task_summaries_ = meta["task_summaries"]
        if (path / EXPERIENCE_FILE).is_file():
            system.experience_buffer.import_jsonl(path / EXPERIENCE_FILE)
        if meta.get("fitted"):
            arrays = mx.load(str(path / WEIGHTS_FILE))

            def part(prefix: str) -> dict[str, mx.array]:
                return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

            system.surrogate = PEFTSurrogate.from_state(
                meta["surrogate"], part("surrogate."), space
            )
            system.context_scaler_ = Standardizer.from_dict(meta["context_scaler"])
            # Saved before calibration existed: the raw softmax, as it was then.
            system.selector_calibration_ = SelectorCalibration(
                **meta.get("selector_calibration", {})
            )
            system.task_embedder.update(tree_unflatten(list(part("task_embedder.").items())))
            system.method_selector.update(tree_unflatten(list(part("method_selector.").items())))
        return system
