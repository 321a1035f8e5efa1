"""``MethodRecommendation``, how a system recommends one, and the reasoning with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import schema
from ..peft import PEFTMethod
from ..tasks import TaskCharacteristics
from .experience import ExperienceBuffer
from .features import context_vector, describe_prediction
from .hpo import Observations, Proposal

if TYPE_CHECKING:
    from .system import MetaPEFTSystem

UNSEEN_MODEL = (
    "memory and time not predicted: no experience with a model of this size (the cost "
    "ranking of candidates is relative only)"
)


@dataclass
class MethodRecommendation:
    """What the meta-model recommends for a task.

    Attributes:
        method: The recommended PEFT method.
        confidence: Probability that it is the best method (selector x surrogate).
        hyperparameters: Ready for :func:`~metapeft_optuna.training.fine_tune`.
        expected_performance: Predicted ``accuracy``, ``peak_memory_mb`` and
            ``train_seconds`` with uncertainties (None in a cold start).
        reasoning: Why, naming the most similar past tasks and what they showed.
        params: The same configuration as search-space parameters (for Optuna).
        method_probabilities: The combined probability of every method.
        similar_tasks: The nearest source tasks with their best results.

    Example:
        >>> r = MethodRecommendation(PEFTMethod.LORA, 0.6, {"rank": 8}, {"accuracy": 0.9}, "why")
        >>> r.to_dict()["method"]
        'lora'
    """

    method: PEFTMethod
    confidence: float
    hyperparameters: dict[str, Any]
    expected_performance: dict[str, float | None]
    reasoning: str
    params: dict[str, Any] = field(default_factory=dict)
    method_probabilities: dict[str, float] = field(default_factory=dict)
    similar_tasks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["method"] = self.method.value
        return data


def explain(
    pick: str,
    selector_probability: float,
    surrogate_probability: float,
    prediction: dict[str, float],
    similar: list[dict[str, Any]],
    experiences: int,
    tasks: int,
    quality: str = "accuracy",
    knee_of: Sequence[str] = (),
    likeliest: str | None = None,
    unseen_model: bool = False,
) -> str:
    """Why a method was recommended: similar past tasks, the two models' votes, how the
    configuration was chosen (``knee_of``: the objectives of the predicted Pareto front
    it is the knee of; ``likeliest``: the method most likely best on quality alone), the
    predicted outcome."""
    lines = []
    if similar:
        parts = []
        for task in similar:
            ranked = sorted(task["best_quality"].items(), key=lambda kv: -kv[1])[:2]
            shown = ", ".join(f"{m} {a:.2f}" for m, a in ranked)
            parts.append(f"{task['name']} (distance {task['distance']:.2f}; best: {shown})")
        lines.append("Most similar past tasks: " + "; ".join(parts) + ".")
    lines.append(
        f"The method selector gives {pick} p={selector_probability:.2f}; the surrogate gives "
        f"its best configuration the top {quality} with p={surrogate_probability:.2f}."
    )
    if knee_of:
        lines.append(
            f"The configuration is the knee of the predicted Pareto front over "
            f"{', '.join(knee_of)}: good {quality} at low cost"
            + (f" (best on {quality} alone: {likeliest})." if likeliest != pick else ".")
        )
    lines.append(
        f"Predicted for the recommended configuration: {describe_prediction(prediction)} "
        f"(from {experiences} experiences on {tasks} tasks)"
        + (f"; {UNSEEN_MODEL}." if unseen_model else ".")
    )
    return " ".join(lines)


def recommend(
    system: MetaPEFTSystem,
    task_characteristics: TaskCharacteristics,
    model_info: dict[str, Any] | None = None,
    *,
    num_layers: int | None = None,
    seed: int | None = None,
    objectives: Sequence[str] = schema.DEFAULT_OBJECTIVES,
) -> MethodRecommendation:
    """Recommend a method and configuration, with expected performance and reasoning
    (also :meth:`MetaPEFTSystem.recommend`, with ``system`` as ``self``).

    The method probabilities say which method's best configuration is likely best on
    the quality objective of ``objectives`` (``accuracy`` or ``val_loss``; where no
    experience measured it, predicted accuracy, and the reasoning says so). With
    cost objectives too, the configuration is the knee of the predicted Pareto
    front over all methods (good quality at low cost); with quality alone, the
    likeliest method's best predicted configuration.

    Args:
        system: The meta-model.
        task_characteristics: The task.
        model_info: The model's info dict (``ModelInfo.to_dict()``).
        num_layers: The model's transformer blocks (default: ``model_info``'s, else 30).
        seed: Seeds the candidates (default: the system's seed).
        objectives: The study's objective names.

    Raises:
        ConfigError: An unknown objective name.
    """
    objectives = schema.check_objectives(objectives)
    context = context_vector(task_characteristics, model_info)
    layers = num_layers or (model_info or {}).get("num_layers") or 30
    rng = np.random.default_rng(system.seed if seed is None else seed)
    if not system.is_fitted:
        method = "lora" if "lora" in system.methods else system.methods[0]
        params = system.search_space.sample_completion(system.search_space.defaults(method), rng)
        _, hp = system.search_space.to_hyperparameters(params, layers)
        uniform = 1.0 / len(system.methods)
        return MethodRecommendation(
            PEFTMethod(method),
            uniform,
            hp,
            {},
            "cold start: no experience yet, so every method is equally likely "
            f"(p={uniform:.2f} each) and uncertainty is unbounded; starting with "
            f"{method} at its default settings. Every finished trial becomes experience.",
            params,
            dict.fromkeys(system.methods, uniform),
            [],
        )
    quality = schema.quality_objective(objectives) or "accuracy"
    if not system.surrogate.known_targets_[schema.METRICS.index(quality)]:
        quality = "accuracy"
        objectives = tuple(quality if o in schema.QUALITY_METRICS else o for o in objectives)
    best, selector, surrogate_p, combined = method_vote(system, context, rng, quality)
    likeliest = system.methods[int(np.argmax(combined))]
    proposal = best[likeliest]
    if len(objectives) > 1:
        proposal = system.hyperparameter_optimizer.propose(
            system.surrogate,
            context,
            Observations(objectives),
            rng=rng,
            seeds=system.seed_configurations(context),
        )[0]
    proposal = honest(system.experience_buffer, proposal, model_info)
    pick = proposal.params["method"]
    _, hp = system.search_space.to_hyperparameters(proposal.params, layers)
    similar = system.similar_tasks(context)
    index = system.methods.index(pick)
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
            len(system.experience_buffer),
            len(system.task_summaries_),
            quality,
            knee_of=objectives if len(objectives) > 1 else (),
            likeliest=likeliest,
            unseen_model=not knows_model(system.experience_buffer, model_info),
        ),
        proposal.params,
        dict(zip(system.methods, combined.round(4).tolist())),
        similar,
    )


def best_per_method(
    system: MetaPEFTSystem, context: np.ndarray, rng: np.random.Generator, quality: str = "accuracy"
) -> dict[str, Proposal]:
    """The configuration with the best predicted ``quality`` for every method."""
    out = {}
    for method in system.methods:
        seeds = system.seed_configurations(context, method)
        observations = Observations((quality,), methods=[method])
        out[method] = system.hyperparameter_optimizer.propose(
            system.surrogate, context, observations, rng=rng, seeds=seeds
        )[0]
    return out


def method_vote(
    system: MetaPEFTSystem, context: np.ndarray, rng: np.random.Generator, quality: str = "accuracy"
) -> tuple[dict[str, Proposal], np.ndarray, np.ndarray, np.ndarray]:
    """Which method is likely best on ``quality`` for the task at ``context``.

    Two votes: the method selector's calibrated probabilities, and the probability that
    each method's best predicted configuration has the top ``quality`` (Monte Carlo over
    the surrogate's predictive distribution); the product of the two, normalised, is
    what a recommendation follows.

    Returns:
        ``(best, selector, surrogate, combined)``: each method's best configuration
        (:func:`best_per_method`), then three ``(len(system.methods),)`` probability
        vectors in ``system.methods`` order.
    """
    best = best_per_method(system, context, rng, quality)
    column = schema.METRICS.index(quality)
    sign = -schema.OBJECTIVE_SPECS[quality].sign  # higher is better
    means = np.array([sign * best[m].mean[column] for m in system.methods])
    stds = np.array([best[m].std[column] for m in system.methods])
    draws = rng.normal(means, stds, size=(2000, len(system.methods)))
    surrogate = np.bincount(draws.argmax(axis=1), minlength=len(system.methods)) / 2000
    selector = system.method_probabilities(context)
    combined = selector * (surrogate + 1e-3)
    return best, selector, surrogate, combined / combined.sum()


def knows_model(buffer: ExperienceBuffer, model_info: dict[str, Any] | None) -> bool:
    """Whether ``buffer`` holds a model like ``model_info``'s (parameters within a factor
    of 2, the same quantization), so that predicted memory and time carry over to it.
    Without ``model_info``: assumed to be so."""
    if not model_info or not model_info.get("num_parameters"):
        return True
    size, bits = model_info["num_parameters"], model_info.get("quantization_bits")
    return any(
        0.5 <= size / known <= 2 and e.model_info.get("quantization_bits") == bits
        for e in buffer
        if (known := e.model_info.get("num_parameters"))
    )


def honest(
    buffer: ExperienceBuffer, proposal: Proposal, model_info: dict[str, Any] | None
) -> Proposal:
    """``proposal`` with memory and time marked unknown for a model ``buffer`` has not
    seen (the candidates' ranking by cost stays relative)."""
    if knows_model(buffer, model_info) or not np.isfinite(proposal.mean).any():
        return proposal
    return proposal.without(schema.COST_OBJECTIVES, UNSEEN_MODEL)
