"""``PEFTObjective``: an Optuna objective that fine-tunes one PEFT configuration per trial."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from .. import schema
from ..errors import ConfigError, MetaLearningError
from ..models import LoadedModel, load_model
from ..models.info import describe
from ..tasks import Task, TaskCharacteristics, load_task
from . import dashboard, reporting
from .baseline import zero_shot
from .prepared import PreparedTask
from .results import CurvePoint, TrainingBudget, TrialResult
from .search_space import PEFTSearchSpace
from .trainer import fine_tune

logger = logging.getLogger("metapeft_optuna")


class PEFTObjective:
    """Fine-tune ``model`` on ``task`` with the configuration a trial suggests.

    Returns the objectives named in ``objectives`` (any subset of
    ``schema.METRICS`` in any order: ``accuracy``, ``val_loss`` in nats per answer token,
    ``peak_memory_mb``, ``train_seconds``); :attr:`directions` gives the study's
    directions and the first trial records the names as the study's metric names, so the
    sampler, pruner and experience reader read every value by name. By default the
    quality objective is the task's (:attr:`Task.quality_objective`: accuracy where
    answers can be checked exactly, val_loss for language modelling and free-form
    answers), followed by peak memory and training time. Every trial also records all
    test metrics with their standard errors (the ``metrics`` user attribute), and the
    first trial of a study measures the untuned model on the same test split (the
    zero-shot baseline, the ``metapeft_zero_shot`` study attribute). Works with any Optuna
    sampler.

    A configuration that cannot be trained (NaN loss, too many virtual tokens for the
    context, memory ceiling exceeded, ...) is recorded in the trial's ``fail_reason``
    user attribute and returns NaN, which Optuna marks as a failed trial; the study
    goes on. The first call stores the task's characteristics and the model's info on
    the study, which makes the study experience for the meta-model.

    Args:
        task: A :class:`Task` or a task spec (built-in name or data file).
        model: A model spec or an already loaded ``(model, tokenizer, info)``. Specs are
            loaded on the first trial and kept for the following ones.
        search_space: The :class:`PEFTSearchSpace` (default: every method).
        budget: The :class:`TrainingBudget` of each trial.
        adapters_dir: Save each trial's adapter under
            ``adapters_dir/trial-<trial id>`` (None: do not keep a copy on disk).
        artifact_store: Store each completed trial's adapter files and learning-curve
            plot there with Optuna's artifact API (an
            ``optuna.artifacts.FileSystemArtifactStore``; the ids are the trial's
            ``artifacts`` user attribute), where optuna-dashboard lists them.
        notes: Write optuna-dashboard notes: the study's (recommendation, reasoning,
            similar past tasks, zero-shot baseline) and each completed trial's (phase,
            predicted against measured values, settings).
        objectives: Names of the objectives to return, in that order (default: the
            task's quality objective, ``peak_memory_mb``, ``train_seconds``).
        deadline: A ``time.time()`` after which a trial still training is pruned at its
            next learning-curve point but the last (:func:`reporting.prune_if_due`).

    Raises:
        ConfigError: An unknown or repeated objective name; or, at the first trial, a
            study whose metric names or directions are not these objectives', or that
            holds another task's data, another model, or other choices of a
            categorical parameter (:meth:`check_study`).

    Example:
        >>> import optuna
        >>> objective = PEFTObjective("parity@64", model="tiny",
        ...                           search_space=PEFTSearchSpace(methods=("lora",)),
        ...                           budget=TrainingBudget(curve_points=2, eval_examples=8))
        >>> study = optuna.create_study(directions=objective.directions)
        >>> study.optimize(objective, n_trials=1)
        >>> len(study.trials[0].values)
        3
    """

    def __init__(
        self,
        task: Task | str,
        model: str | LoadedModel | tuple = "smollm2-135m",
        *,
        search_space: PEFTSearchSpace | None = None,
        budget: TrainingBudget | None = None,
        adapters_dir: str | Path | None = None,
        artifact_store: optuna.artifacts.FileSystemArtifactStore | None = None,
        notes: bool = True,
        objectives: Sequence[str] | None = None,
        deadline: float | None = None,
    ):
        self.task = load_task(task) if isinstance(task, str) else task
        self.deadline = deadline
        self.objectives = schema.check_objectives(
            objectives or schema.default_objectives(self.task.quality_objective)
        )
        self.model_spec = model if isinstance(model, str) else None
        self._loaded = None if isinstance(model, str) else _as_loaded(model)
        self.search_space = search_space or PEFTSearchSpace()
        self.budget = budget or TrainingBudget()
        self.adapters_dir = Path(adapters_dir).resolve() if adapters_dir is not None else None
        self.artifact_store = artifact_store
        self.notes = notes
        self._noted: set[tuple[int, bool]] = set()  # (study id, with a recommendation)
        self._prepared: PreparedTask | None = None
        self._characteristics: TaskCharacteristics | None = None
        self._checked: set[int] = set()  # studies whose identity was checked

    @property
    def directions(self) -> list[str]:
        """The study directions of :attr:`objectives`, in order."""
        return schema.directions(self.objectives)

    @property
    def scores_accuracy(self) -> bool:
        """Whether trials score test accuracy (skipped for free-form answers unless it is
        an objective: greedy decoding is the costly part of evaluation)."""
        return "accuracy" in self.objectives or self.task.quality_objective == "accuracy"

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.model_spec)
        return self._loaded

    @property
    def prepared(self) -> PreparedTask:
        if self._prepared is None:
            context = self.loaded.info.context_length
            # Room for the most virtual tokens a trial may prepend (prompt methods), up
            # to half the context: trials with more fail with their own reason.
            reserve = min(self.search_space.max_virtual_tokens(), (context or 0) // 2)
            self._prepared = PreparedTask.prepare(
                self.task,
                self.loaded.tokenizer,
                self.budget,
                max_length=context - reserve if context else None,
            )
        return self._prepared

    @property
    def characteristics(self) -> TaskCharacteristics:
        if self._characteristics is None:
            self._characteristics = TaskCharacteristics.from_task(self.task, self.loaded.tokenizer)
        return self._characteristics

    def study_attributes(self) -> dict[str, Any]:
        """What the study carries so that it becomes experience."""
        return {
            schema.STUDY_TASK: {
                "name": self.task.name,
                "fingerprint": self.task.fingerprint,
                "quality": self.task.quality_objective,
                "characteristics": self.characteristics.to_dict(),
            },
            schema.STUDY_MODEL: self.loaded.info.to_dict(),
            schema.STUDY_SPACE: {"methods": list(self.search_space.methods)},
        }

    def check_study(self, study: optuna.Study) -> None:
        """Refuse to resume ``study`` with another task's data, another model, or other
        choices of a categorical parameter (Optuna cannot change those within a study).

        Raises:
            ConfigError: Naming what the study holds, what this objective has, and the
                fix (a new study name, or the study's own settings).
        """
        self._checked.add(study._study_id)
        attrs, name = study.user_attrs, study.study_name
        fix = f"use a new study name (for example {name + '-' + self.task.name!r})"
        task = attrs.get(schema.STUDY_TASK)
        if task is not None:
            theirs = task.get("fingerprint")  # studies from before fingerprints: the name
            same = theirs == self.task.fingerprint if theirs else task["name"] == self.task.name
            if not same:
                raise ConfigError(
                    f"study {name!r} holds trials of task {task['name']!r} (data "
                    f"{theirs or 'unrecorded'}), not {self.task.name!r} (data "
                    f"{self.task.fingerprint}); resuming would mix two tasks' trials: {fix}."
                )
        # The model by what it is (a spec or a path to the same weights may differ).
        model, ours = attrs.get(schema.STUDY_MODEL), self.loaded.info.to_dict()
        if model is not None:
            changed = [
                f"{k} {model[k]} -> {ours[k]}"
                for k in ours
                if k != "name" and k in model and model[k] != ours[k]
            ]
            if changed:
                raise ConfigError(
                    f"study {name!r} fine-tuned model {model.get('name')!r}, not "
                    f"{ours['name']!r} ({', '.join(changed)}); {fix}."
                )
        seen: dict[str, Any] = {}
        for trial in study.get_trials(deepcopy=False):
            seen.update(trial.distributions)
        for param, distribution in self.search_space.distributions().items():
            before = seen.get(param)
            if (
                isinstance(before, optuna.distributions.CategoricalDistribution)
                and isinstance(distribution, optuna.distributions.CategoricalDistribution)
                and tuple(before.choices) != tuple(distribution.choices)
            ):
                raise ConfigError(
                    f"study {name!r} searched {param} over {list(before.choices)}, this "
                    f"objective over {list(distribution.choices)}; Optuna cannot change a "
                    f"categorical parameter's choices within a study: search the same "
                    f"choices, or {fix}."
                )

    def check_objectives(self, study: optuna.Study) -> None:
        """Refuse a study of other objectives (names, or directions where it has no names:
        a new study, or one from before objectives had names). Loads no model.

        Raises:
            ConfigError: Naming the study's objectives and these.
        """
        names, fix = study.metric_names, "use a new study name"
        if names is None:  # new, or made before objectives had names: its directions
            given = [d.name.lower() for d in study.directions]
            if given != self.directions:
                raise ConfigError(
                    f"study {study.study_name!r} has directions {given}, but "
                    f"{list(self.objectives)} need {self.directions}; {fix}, or pass "
                    "objectives of its directions."
                )
            return
        try:
            found = schema.objectives_of(names, study.directions)
        except ConfigError as exc:
            raise ConfigError(f"study {study.study_name!r}: {exc}") from None
        if found != self.objectives:
            raise ConfigError(
                f"study {study.study_name!r} optimises {list(found)}, not "
                f"{list(self.objectives)}; pass the same objectives or use a new study name."
            )

    def _mark_study(self, study: optuna.Study) -> None:
        if study._study_id not in self._checked:
            self.check_study(study)
        self.check_objectives(study)
        if study.metric_names is None:
            schema.name_study_objectives(study, self.objectives)
        existing = study.user_attrs
        for key, value in self.study_attributes().items():
            if key not in existing:
                study.set_user_attr(key, value)
        if schema.STUDY_BASELINE not in existing:
            baseline = zero_shot(self.loaded, self.prepared, self.scores_accuracy)
            study.set_user_attr(schema.STUDY_BASELINE, baseline)
            logger.info("zero-shot baseline on %s: %s", self.task.name, baseline)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        self._mark_study(trial.study)
        # A retried trial (Optuna's retry callbacks) inherits the failed one's attributes:
        # its measurements start afresh.
        for key in (schema.TRIAL_CURVE, schema.TRIAL_FAIL_REASON):
            if trial.user_attrs.get(key):
                trial.set_user_attr(key, None)
        try:
            method, hyperparameters = self.search_space.suggest(
                trial, num_layers=len(self.loaded.model.layers), init_text=self.task.description
            )
        except ConfigError as exc:  # an enqueued configuration outside the space
            return self._failed(trial, exc)
        trial.set_user_attr(schema.TRIAL_METHOD, method)
        trial.set_user_attr(schema.TRIAL_HYPERPARAMETERS, hyperparameters)
        trial.set_user_attr("model", self.loaded.info.name)
        trial.set_user_attr("task", self.task.name)
        with tempfile.TemporaryDirectory() as scratch:
            output_dir = None
            if self.adapters_dir is not None:
                output_dir = self.adapters_dir / f"trial-{trial._trial_id}"
            elif self.artifact_store is not None:
                output_dir = Path(scratch) / "adapter"
            return self._fine_tune(trial, method, hyperparameters, output_dir)

    def _fine_tune(
        self, trial: optuna.Trial, method: str, hyperparameters: dict, output_dir: Path | None
    ) -> float | tuple[float, ...]:
        try:
            result = fine_tune(
                self.loaded,
                self.prepared,
                method,
                hyperparameters,
                self.budget,
                output_dir=output_dir,
                on_curve_point=lambda p: self._on_curve_point(trial, p, hyperparameters["steps"]),
                score_accuracy=self.scores_accuracy,
            )
        except KeyboardInterrupt as exc:  # Optuna fails the trial; say why
            trial.set_user_attr(
                schema.TRIAL_FAIL_REASON, f"{schema.INTERRUPTED} ({exc or 'SIGINT'})"
            )
            raise
        except MetaLearningError as exc:
            return self._failed(trial, exc)
        values = result.values(self.objectives)
        self._record(trial, result, values)
        self._publish(trial, result, values)
        return values[0] if len(values) == 1 else values

    def _failed(self, trial: optuna.Trial, reason: Exception) -> float | tuple[float, ...]:
        """The trial fails with ``reason`` (a user attribute, shown by the CLI and the
        dashboard); the study goes on."""
        trial.set_user_attr(schema.TRIAL_FAIL_REASON, str(reason))
        logger.warning("trial %d failed: %s", trial.number, reason)
        nan = float("nan")
        return nan if len(self.objectives) == 1 else tuple(nan for _ in self.objectives)

    def _publish(self, trial: optuna.Trial, result: TrialResult, values: tuple[float, ...]) -> None:
        """The trial's artifacts and notes, and the study's note (again once the
        sampler's recommendation is there), for optuna-dashboard."""
        if self.artifact_store is not None:
            artifacts = {}
            if result.adapter_path is not None:
                artifacts.update(
                    dashboard.upload_adapter(self.artifact_store, trial, Path(result.adapter_path))
                )
            curve = [p.to_dict() for p in result.learning_curve]
            artifacts.update(dashboard.upload_curve_plot(self.artifact_store, trial, curve))
            trial.set_user_attr(dashboard.TRIAL_ARTIFACTS, artifacts)
        if not self.notes:
            return
        # From the storage: the sampler records its prediction there, not on this object.
        stored = trial.study._storage.get_trial(trial._trial_id).user_attrs
        measured = {**result.metrics, **schema.metrics_by_name(self.objectives, values)}
        dashboard.save_note(trial, dashboard.trial_note(stored, measured, self.objectives))
        attrs = trial.study.user_attrs
        key = (trial.study._study_id, schema.STUDY_RECOMMENDATION in attrs)
        if key not in self._noted:
            self._noted.add(key)
            dashboard.save_note(trial.study, dashboard.study_note(attrs))

    def _on_curve_point(self, trial: optuna.Trial, point: CurvePoint, steps: int) -> None:
        # Single-objective pruners compare what tracks the study's own objective.
        curve_key = schema.OBJECTIVE_SPECS[self.objectives[0]].curve_key
        reporting.report(trial, point.to_dict(), metric=curve_key)
        reporting.prune_if_due(trial, point.step, steps, self.deadline)

    def _record(self, trial: optuna.Trial, result: TrialResult, values: tuple[float, ...]) -> None:
        trial.set_user_attr(schema.TRIAL_METRICS, result.metrics)
        trial.set_user_attr(schema.TRIAL_TRAINABLE_PARAMETERS, result.trainable_parameters)
        trial.set_user_attr(schema.TRIAL_CURVE, [p.to_dict() for p in result.learning_curve])
        trial.set_user_attr(schema.TRIAL_EVAL_SECONDS, result.eval_seconds)
        trial.set_user_attr("tokens_per_second", result.tokens_per_second)
        # train_seconds depends on the BLAS threads (metapeft tune --workers pins them)
        trial.set_user_attr("cpu_threads", int(os.environ.get("MKL_NUM_THREADS") or os.cpu_count()))
        if self.adapters_dir is not None:  # not the scratch copy behind the artifacts
            trial.set_user_attr(schema.TRIAL_ADAPTER, result.adapter_path)
        for key, value in result.extra.items():
            trial.set_user_attr(key, value)
        if not all(math.isfinite(v) for v in values):
            trial.set_user_attr(schema.TRIAL_FAIL_REASON, "non-finite objective values")


def _as_loaded(model: tuple) -> LoadedModel:
    """``(model, tokenizer[, info])`` as a :class:`LoadedModel`, describing it if needed."""
    if len(model) > 2 and model[2] is not None:
        return LoadedModel(*model[:3])
    return LoadedModel(model[0], model[1], describe(model[0], model[1], type(model[0]).__name__))
