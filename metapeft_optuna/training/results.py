"""``TrainingBudget`` (what a trial may spend) and ``TrialResult`` (what it produced)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..validation import check_int, check_number


@dataclass(frozen=True)
class TrainingBudget:
    """Limits and evaluation settings of one fine-tune (the hyperparameters are separate).

    Attributes:
        max_train_examples: Cap on the training split (None: all).
        curve_examples: Validation examples scored at every learning-curve point.
        eval_examples: Held-out test examples scored for the objectives (400 gives an
            accuracy standard error of at most 0.025).
        curve_points: Number of learning-curve points (evenly spaced, last at the end).
        memory_limit_mb: Fail the trial when peak memory exceeds this (None: no limit).
        max_grad_norm: Gradient clipping (None: off).
        seed: Seeds the adapter's initialisation, batch order and dropout.
        split_seed: Seeds the train/validation/test split.

    Example:
        >>> TrainingBudget(curve_points=4).curve_steps(40)
        [10, 20, 30, 40]
    """

    max_train_examples: int | None = None
    curve_examples: int = 32
    eval_examples: int = 400
    curve_points: int = 4
    memory_limit_mb: float | None = None
    max_grad_norm: float | None = 1.0
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("curve_examples", "eval_examples", "curve_points"):
            check_int("TrainingBudget", name, getattr(self, name))
        check_int("TrainingBudget", "max_train_examples", self.max_train_examples, optional=True)
        for name in ("memory_limit_mb", "max_grad_norm"):
            check_number(
                "TrainingBudget", name, getattr(self, name), 0, low_open=True, optional=True
            )

    def curve_steps(self, steps: int) -> list[int]:
        """The optimizer steps after which the learning curve is sampled."""
        points = min(self.curve_points, steps)
        return sorted({max(1, round(steps * (i + 1) / points)) for i in range(points)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CurvePoint:
    """One point of a learning curve, measured during training.

    Attributes:
        step: Optimizer steps done (1-based).
        train_loss: Mean training loss since the previous point (nats per answer token).
        val_loss: Validation loss on ``TrainingBudget.curve_examples`` examples (nats per
            answer token).
        val_metric: On the same examples, teacher-forced, in ``[0, 1]``: label accuracy
            (classification), the share of answers whose every token is the arg-max
            (generation: greedy decoding's exact match before normalisation), or
            next-token accuracy (language modelling).
        train_seconds: Training wall time so far (evaluation excluded).
        peak_memory_mb: Peak MLX memory so far in MB, or None.

    Example:
        >>> CurvePoint(step=10, train_loss=0.9, val_loss=0.8, val_metric=0.6,
        ...            train_seconds=4.2).to_dict()["val_metric"]
        0.6
    """

    step: int
    train_loss: float
    val_loss: float
    val_metric: float
    train_seconds: float
    peak_memory_mb: float | None = None

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class TrialResult:
    """The outcome of one fine-tune.

    Attributes:
        metrics: What the held-out test split measured: ``val_loss`` (nats per answer
            token), ``val_loss_se``, ``perplexity``, ``test_examples``, and ``accuracy``,
            ``accuracy_se`` where accuracy was scored (see
            :func:`~metapeft_optuna.training.evaluation.score_test`).
        peak_memory_mb: Peak MLX memory while training, weights included.
        train_seconds: Wall time of the training loop (evaluations excluded).
        eval_seconds: Wall time of all evaluations (curve points and final test).
        trainable_parameters: Number of trained parameters.
        learning_curve: Validation metric and losses at regular steps.
        adapter_path: Where the adapter was saved (None if not saved).
        method: The PEFT method.
        hyperparameters: The full configuration that was trained.
        tokens_per_second: Training tokens (padding excluded) per training second.

    Example:
        >>> r = TrialResult({"accuracy": 0.9, "val_loss": 0.3}, 600.0, 20.0, 3.0, 1792, [],
        ...                 None, "lora", {})
        >>> r.values(("val_loss", "train_seconds"))
        (0.3, 20.0)
    """

    metrics: dict[str, float]
    peak_memory_mb: float
    train_seconds: float
    eval_seconds: float
    trainable_parameters: int
    learning_curve: list[CurvePoint]
    adapter_path: str | None
    method: str
    hyperparameters: dict[str, Any]
    tokens_per_second: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def val_loss(self) -> float | None:
        return self.metrics.get("val_loss")

    def value(self, name: str) -> float:
        """One objective by name (``schema.METRICS``); NaN when it was not measured."""
        if name in ("peak_memory_mb", "train_seconds"):
            return getattr(self, name)
        value = self.metrics.get(name)
        return float("nan") if value is None else float(value)

    def values(self, names: Sequence[str]) -> tuple[float, ...]:
        """The objectives ``names``, in that order."""
        return tuple(self.value(n) for n in names)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["learning_curve"] = [p.to_dict() for p in self.learning_curve]
        return data
