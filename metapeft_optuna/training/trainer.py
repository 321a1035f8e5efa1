"""``fine_tune``: one real MLX adapter fine-tune, scored on its held-out test split."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx

from ..errors import AdapterCreationError, ConfigError, TrialFailedError
from ..models import LoadedModel, load_model
from ..peft import (
    AdapterFactory,
    BaseAdapter,
    PEFTMethod,
    config_class,
    resolve_method,
    save_adapter,
)
from ..peft.virtual_tokens import VirtualTokenAdapter
from ..tasks import Task, load_task
from ..validation import check_int, check_number
from .batching import batch_indices, collate
from .evaluation import teacher_forced
from .frozen import FrozenBlocks
from .prepared import PreparedTask
from .results import CurvePoint, TrainingBudget, TrialResult
from .step import make_optimizer, make_train_step

TRAINING_KEYS = ("learning_rate", "steps", "batch_size")
CurveCallback = Callable[[CurvePoint], None]


def split_hyperparameters(hyperparameters: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """``(training settings, adapter config)`` from one flat hyperparameter dict."""
    missing = [k for k in TRAINING_KEYS if k not in hyperparameters]
    if missing:
        raise ConfigError(
            f"hyperparameters lack {missing}; give learning_rate, steps and "
            "batch_size next to the adapter's own settings."
        )
    training = {k: hyperparameters[k] for k in TRAINING_KEYS}
    lr, steps, batch = training["learning_rate"], training["steps"], training["batch_size"]
    check_number("hyperparameters", "learning_rate", lr, 0, low_open=True)
    check_int("hyperparameters", "steps", steps)
    check_int("hyperparameters", "batch_size", batch)
    return training, {k: v for k, v in hyperparameters.items() if k not in TRAINING_KEYS}


def fine_tune(
    model: LoadedModel | tuple | str,
    task: Task | PreparedTask | str,
    method: str | PEFTMethod,
    hyperparameters: dict[str, Any],
    budget: TrainingBudget | None = None,
    *,
    output_dir: str | Path | None = None,
    on_curve_point: CurveCallback | None = None,
    score_accuracy: bool | None = None,
) -> TrialResult:
    """Fine-tune ``model`` on ``task`` with one PEFT configuration.

    The model is left as it was found (adapters are detached at the end), so one loaded
    model serves many trials.

    Args:
        model: ``(model, tokenizer[, info])`` as from :func:`load_model`, or a model spec.
        task: A :class:`Task`, a :class:`PreparedTask` (tokenised once), or a task spec.
        method: The PEFT method.
        hyperparameters: ``learning_rate``, ``steps``, ``batch_size`` plus the method's
            config fields (see :mod:`metapeft_optuna.peft`).
        budget: Evaluation sizes, limits and seeds.
        output_dir: Save the trained adapter here (None: do not save).
        on_curve_point: Called with every learning-curve point; it may raise (for
            example ``optuna.TrialPruned``) to stop training.
        score_accuracy: Score test accuracy besides val_loss (None: when accuracy is the
            task's quality objective; free-form answers are scored by val_loss alone).

    Returns:
        A :class:`TrialResult`.

    Raises:
        TrialFailedError: The configuration does not fit the model or task, the loss
            became NaN/infinite, or peak memory exceeded ``budget.memory_limit_mb``.

    Example:
        >>> result = fine_tune("tiny", "parity@64", "lora",
        ...                    {"learning_rate": 1e-3, "steps": 4, "batch_size": 8, "rank": 4},
        ...                    TrainingBudget(curve_points=2, eval_examples=8))
        >>> len(result.learning_curve), result.trainable_parameters
        (2, 1792)
    """
    budget = budget or TrainingBudget()
    if isinstance(model, str):
        model = load_model(model)
    base, tokenizer = model[0], model[1]
    if isinstance(task, str):
        task = load_task(task)
    prepared = (
        task if isinstance(task, PreparedTask) else PreparedTask.prepare(task, tokenizer, budget)
    )
    method = resolve_method(method)
    training, adapter_config = split_hyperparameters(hyperparameters)
    if score_accuracy is None:
        score_accuracy = prepared.task.quality_objective == "accuracy"
    adapter_config = config_class(method).for_training(adapter_config, training["steps"])

    mx.random.seed(budget.seed)
    adapter = _create_adapter(method, base, adapter_config, tokenizer, prepared)
    try:
        return _train_and_score(
            adapter,
            prepared,
            tokenizer,
            method,
            training,
            {**training, **adapter_config},
            budget,
            output_dir,
            on_curve_point,
            score_accuracy,
        )
    finally:
        adapter.detach()
        mx.clear_cache()


def _create_adapter(
    method: PEFTMethod, base: Any, config: dict[str, Any], tokenizer: Any, prepared: PreparedTask
) -> BaseAdapter:
    try:
        adapter = AdapterFactory.create_adapter(method, base, config, tokenizer=tokenizer)
    except AdapterCreationError as exc:
        raise TrialFailedError(f"configuration does not fit the model: {exc}") from exc
    virtual = getattr(adapter.config, "num_virtual_tokens", 0)
    context = getattr(getattr(base, "args", None), "max_position_embeddings", None)
    if context and prepared.longest + virtual > context:
        adapter.detach()
        raise TrialFailedError(
            f"{virtual} virtual tokens + the longest example ({prepared.longest} tokens) "
            f"exceed the model's context of {context}; use fewer virtual tokens."
        )
    if adapter.num_trainable_parameters == 0:
        adapter.detach()
        raise TrialFailedError(f"{method} with {config} has no trainable parameters.")
    return adapter


def _check_step(
    loss: float, step: int, peak_bytes: int, learning_rate: float, budget: TrainingBudget
) -> None:
    """Fail the trial on a non-finite loss or a peak above the memory ceiling."""
    if not math.isfinite(loss):
        raise TrialFailedError(
            f"the training loss became {loss} at step {step}; the learning rate "
            f"{learning_rate:g} is likely too high for this method."
        )
    peak_mb = peak_bytes / 2**20
    if budget.memory_limit_mb is not None and peak_mb > budget.memory_limit_mb:
        raise TrialFailedError(
            f"peak memory {peak_mb:.0f} MB exceeded the ceiling of "
            f"{budget.memory_limit_mb:.0f} MB at step {step}."
        )


def _curve_point(
    adapter: BaseAdapter,
    prepared: PreparedTask,
    step: int,
    losses: list[float],
    train_seconds: float,
    peak_bytes: int,
) -> CurvePoint:
    adapter.eval()
    scored = teacher_forced(
        adapter,
        prepared.validation,
        prepared.task.task_type,
        prepared.labels,
        prepared.eval_states(adapter, "validation"),
    )
    adapter.train()
    return CurvePoint(
        step,
        sum(losses) / len(losses),
        scored.loss,
        scored.metric,
        train_seconds,
        peak_bytes / 2**20,
    )


def _train_and_score(
    adapter: BaseAdapter,
    prepared: PreparedTask,
    tokenizer: Any,
    method: PEFTMethod,
    training: dict[str, Any],
    hyperparameters: dict,
    budget: TrainingBudget,
    output_dir: str | Path | None,
    on_curve_point: CurveCallback | None,
    score_accuracy: bool,
) -> TrialResult:
    steps, learning_rate = training["steps"], training["learning_rate"]
    optimizer = make_optimizer(learning_rate, steps)
    # Blocks below the lowest adapted one are computed once per example (frozen.py).
    blocks = adapter.frozen_blocks
    frozen = FrozenBlocks(adapter, prepared.train, blocks) if blocks else None
    step_fn = make_train_step(
        adapter,
        optimizer,
        max_grad_norm=budget.max_grad_norm,
        frozen_blocks=blocks,
    )
    batches = batch_indices(prepared.train, training["batch_size"], seed=budget.seed)
    curve_steps = set(budget.curve_steps(steps))
    curve: list[CurvePoint] = []
    losses: list[float] = []
    eval_seconds = train_seconds = 0.0
    tokens = peak = 0
    adapter.train()
    mx.eval(adapter.parameters())
    mx.reset_peak_memory()
    started = time.perf_counter()
    for step in range(1, steps + 1):
        indices = next(batches)
        batch = collate([prepared.train[i] for i in indices])
        if frozen is None:
            loss, _, gradients = step_fn(batch)
        else:
            loss, _, gradients = step_fn(batch, frozen.batch(indices, batch.tokens.shape[1]))
        mx.eval(loss, adapter.state, optimizer.state)
        if gradients is not None:
            adapter.after_step(step, gradients)
        tokens += int(batch.lengths.sum())
        peak = max(peak, mx.get_peak_memory())
        losses.append(loss.item())
        _check_step(losses[-1], step, peak, learning_rate, budget)
        if step in curve_steps:
            # The clock stops while the curve point is evaluated.
            train_seconds += time.perf_counter() - started
            eval_start = time.perf_counter()
            curve.append(_curve_point(adapter, prepared, step, losses, train_seconds, peak))
            losses = []
            eval_seconds += time.perf_counter() - eval_start
            mx.reset_peak_memory()  # evaluation memory is not training memory
            if on_curve_point is not None:
                on_curve_point(curve[-1])
            started = time.perf_counter()
    adapter.eval()
    eval_start = time.perf_counter()
    metrics = prepared.score(adapter, tokenizer, score_accuracy)
    eval_seconds += time.perf_counter() - eval_start
    adapter_path = str(save_adapter(adapter, output_dir)) if output_dir is not None else None
    extra = {"active_rank": adapter.active_rank()} if hasattr(adapter, "active_rank") else {}
    if frozen is not None:  # timings of trials before this reuse (2026-11-30) lack it
        extra["frozen_blocks_reused"] = blocks
    if isinstance(adapter, VirtualTokenAdapter) and adapter.shares_virtual_tokens:
        # Computed once per batch since 2026-11-30 (VirtualTokenAdapter); earlier trials
        # ran them per example, so their time and memory lack this mark.
        extra["virtual_tokens_shared"] = adapter.num_virtual_tokens
    return TrialResult(
        metrics=metrics,
        peak_memory_mb=peak / 2**20,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        trainable_parameters=adapter.num_trainable_parameters,
        learning_curve=curve,
        adapter_path=adapter_path,
        method=method.value,
        hyperparameters=hyperparameters,
        tokens_per_second=tokens / max(train_seconds, 1e-9),
        extra=extra,
    )
