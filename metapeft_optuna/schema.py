"""The objectives a PEFT study can optimise, and the names under which studies and trials
carry metapeft information in Optuna storages.

Objectives are identified by name everywhere (the objective, sampler, pruner, experience
reader, surrogate and benchmarks): a study records its objective names as Optuna metric
names, and :func:`study_objectives` reads them back, so any subset in any order works.

The storage *is* the experience: any study whose user attributes hold
:data:`STUDY_TASK` and :data:`STUDY_MODEL` is a source task for the meta-model, and
each of its finished or pruned trials one experience.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective a trial can return.

    Attributes:
        name: Its name (an Optuna metric name).
        direction: ``"maximize"`` or ``"minimize"``.
        unit: What the value measures, for tables and plots.
        curve_key: The learning-curve field that tracks it while training.
        log_scale: The meta-model predicts its logarithm (positive values spanning
            orders of magnitude).
        quality: Whether it measures how well the task is learned (as opposed to cost).

    Example:
        >>> OBJECTIVE_SPECS["val_loss"].direction
        'minimize'
    """

    name: str
    direction: str
    unit: str
    curve_key: str
    log_scale: bool
    quality: bool

    @property
    def sign(self) -> float:
        """``+1`` for minimised objectives, ``-1`` for maximised: ``sign * value`` is
        minimised."""
        return 1.0 if self.direction == "minimize" else -1.0


OBJECTIVE_SPECS: dict[str, ObjectiveSpec] = {
    spec.name: spec
    for spec in (
        ObjectiveSpec("accuracy", "maximize", "fraction correct", "val_metric", False, True),
        # Mean cross-entropy of the answer tokens of the held-out test split (as mlx-lm's
        # validation loss): the quality of free-form answers, where exact match stays at 0.
        ObjectiveSpec("val_loss", "minimize", "nats/token", "val_loss", True, True),
        ObjectiveSpec("peak_memory_mb", "minimize", "MB", "peak_memory_mb", True, False),
        ObjectiveSpec("train_seconds", "minimize", "s", "train_seconds", True, False),
    )
}
METRICS = tuple(OBJECTIVE_SPECS)  # every objective, in the meta-model's target order
QUALITY_METRICS = tuple(n for n, s in OBJECTIVE_SPECS.items() if s.quality)
COST_OBJECTIVES = ("peak_memory_mb", "train_seconds")
DEFAULT_OBJECTIVES = ("accuracy", *COST_OBJECTIVES)


def default_objectives(quality: str = "accuracy") -> tuple[str, ...]:
    """``(quality, "peak_memory_mb", "train_seconds")``."""
    return (check_objectives([quality])[0], *COST_OBJECTIVES)


def check_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, checked: known objective names, none twice, at least one.

    Raises:
        ConfigError: Naming the bad entry and the valid names.

    Example:
        >>> check_objectives(["val_loss", "train_seconds"])
        ('val_loss', 'train_seconds')
    """
    names = tuple(names)
    unknown = [n for n in names if n not in OBJECTIVE_SPECS]
    if unknown or not names or len(set(names)) != len(names):
        problem = f"unknown {unknown}" if unknown else "empty" if not names else "repeated"
        raise ConfigError(
            f"objectives={list(names)}: {problem}; choose one or more of {list(METRICS)}, "
            "each once (for example val_loss,peak_memory_mb,train_seconds)."
        )
    return names


def directions(names: Sequence[str]) -> list[str]:
    """Optuna study directions of ``names``."""
    return [OBJECTIVE_SPECS[n].direction for n in names]


def quality_objective(names: Sequence[str]) -> str | None:
    """The first quality objective among ``names`` (None when all are costs)."""
    return next((n for n in names if OBJECTIVE_SPECS[n].quality), None)


def _direction_name(direction: Any) -> str:
    return getattr(direction, "name", str(direction)).lower()


def objectives_of(metric_names: Sequence[str] | None, study_directions: Sequence[Any]) -> tuple:
    """The objective names of a study from its metric names and directions.

    Studies made before objectives had names (the first meta-dataset, ``PEFTObjective``
    with one objective) carry no metric names; their directions identify them:
    ``maximize, minimize, minimize`` is :data:`DEFAULT_OBJECTIVES` and a single
    ``maximize`` is accuracy.

    Raises:
        ConfigError: The study's names or directions are not a PEFT study's (another
            objective's study, or one whose directions contradict its names).

    Example:
        >>> objectives_of(None, ["maximize", "minimize", "minimize"])
        ('accuracy', 'peak_memory_mb', 'train_seconds')
    """
    given = [_direction_name(d) for d in study_directions]
    if metric_names is None:
        if given == directions(DEFAULT_OBJECTIVES):
            return DEFAULT_OBJECTIVES
        if given == ["maximize"]:
            return ("accuracy",)
        raise ConfigError(
            f"the study has directions {given} but no metric names, so its objectives are "
            f"unknown; create it with PEFTObjective's directions (objective names from "
            f"{list(METRICS)}) or use a new study name."
        )
    unknown = [n for n in metric_names if n not in OBJECTIVE_SPECS]
    if unknown:
        raise ConfigError(
            f"the study's objectives {list(metric_names)} are another objective's "
            f"({unknown} unknown here; PEFT studies use {list(METRICS)}); use a new "
            "study name."
        )
    names = check_objectives(metric_names)
    if directions(names) != given:
        raise ConfigError(
            f"the study's objectives {list(names)} have directions {given}, but they are "
            f"{directions(names)}; create the study with directions=objective.directions."
        )
    return names


def study_objectives(study: Any) -> tuple[str, ...]:
    """The objective names of an Optuna ``study`` (see :func:`objectives_of`)."""
    return objectives_of(study.metric_names, study.directions)


def name_study_objectives(study: Any, objectives: Sequence[str]) -> None:
    """Label an Optuna ``study``'s objectives with their names (``set_metric_names``,
    which :func:`study_objectives` reads back), without its experimental-API warning."""
    import optuna  # here, so that the schema imports without Optuna

    with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objectives))


def metrics_by_name(names: Sequence[str], values: Sequence[float] | None) -> dict[str, float]:
    """A trial's values as ``{objective name: value}``; empty when it has none."""
    return dict(zip(names, values)) if values else {}


def trial_metrics(names: Sequence[str], values: Sequence[float] | None, attrs: Mapping) -> dict:
    """Every metric a trial measured, by name: its objective values plus what it recorded
    besides them (:data:`TRIAL_METRICS`: val_loss next to accuracy, standard errors).
    Keys from :data:`METRICS` and their ``_se``; unmeasured ones are absent.

    Example:
        >>> trial_metrics(["accuracy"], [0.5], {TRIAL_METRICS: {"val_loss": 0.7}})
        {'val_loss': 0.7, 'accuracy': 0.5}
    """
    recorded = attrs.get(TRIAL_METRICS) or {}
    keys = [*METRICS, *(f"{name}_se" for name in QUALITY_METRICS)]
    metrics = {k: recorded[k] for k in keys if recorded.get(k) is not None}
    metrics.update(metrics_by_name(names, values))
    return metrics


# Study user attributes.
STUDY_TASK = "metapeft_task"  # {"name", "characteristics": TaskCharacteristics.to_dict()}
STUDY_MODEL = "metapeft_model"  # ModelInfo.to_dict()
STUDY_SPACE = "metapeft_search_space"  # {"methods": [...]}
STUDY_RECOMMENDATION = "metapeft_recommendation"  # MethodRecommendation as a dict
STUDY_BASELINE = "metapeft_zero_shot"  # the untuned model's metrics on the test split

# Trial user attributes.
TRIAL_METHOD = "method"
TRIAL_HYPERPARAMETERS = "hyperparameters"
TRIAL_CURVE = "learning_curve"
TRIAL_TRAINABLE_PARAMETERS = "trainable_parameters"
TRIAL_EVAL_SECONDS = "eval_seconds"
TRIAL_ADAPTER = "adapter_path"
TRIAL_FAIL_REASON = "fail_reason"
TRIAL_PRUNE_REASON = "prune_reason"  # set when a trial is pruned by a deadline
INTERRUPTED = "interrupted"  # how the fail reason of a trial stopped by a signal starts
TRIAL_PREDICTION = "metapeft_prediction"
# Every metric measured on the test split, objective or not, with standard errors:
# {"accuracy", "accuracy_se", "val_loss", "val_loss_se", "perplexity", "test_examples"}.
TRIAL_METRICS = "metrics"
