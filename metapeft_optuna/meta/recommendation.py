"""``MethodRecommendation`` and the human-readable reasoning that comes with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..peft import PEFTMethod
from .features import describe_prediction


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
        f"(from {experiences} experiences on {tasks} tasks)."
    )
    return " ".join(lines)
