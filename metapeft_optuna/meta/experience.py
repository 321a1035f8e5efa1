"""``PEFTExperience`` and ``ExperienceBuffer``: earlier fine-tunes, read from Optuna storages.

The storage *is* the experience: every study whose user attributes carry the task's
characteristics and the model's info (:mod:`metapeft_optuna.schema`) is a source task,
and each of its finished or pruned trials one experience. Buffers read several storages
(the shipped prior plus the user's own), skip the study being optimised, drop
duplicates, and round-trip through JSON Lines so experience can be shared.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import schema
from ..atomic import atomic_path
from ..errors import ConfigError, DataFormatError, MetaLearningError
from ..peft import PEFTMethod
from ..tasks import TaskCharacteristics

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PEFTExperience:
    """One earlier fine-tune.

    Attributes:
        task_embedding: The task's meta-feature vector
            (``TaskCharacteristics.to_vector()``).
        method_used: The PEFT method.
        hyperparameters: The search-space parameters of the trial (``trial.params``).
        performance_metrics: Measured metrics by name (keys from ``schema.METRICS``:
            ``accuracy``, ``val_loss``, ``peak_memory_mb``, ``train_seconds``; plus
            ``accuracy_se``/``val_loss_se`` where recorded). A key is absent or None
            when the trial did not measure it (a pruned trial's final values).
        training_time: Training seconds (the third objective), or None.
        memory_usage: Peak memory in MB (the second objective), or None.
        task_name: The source task.
        task_characteristics: Its :class:`TaskCharacteristics`.
        model_info: The fine-tuned model's info (``ModelInfo.to_dict()``).
        learning_curve: ``[{step, train_loss, val_loss, val_metric, train_seconds}]``.
        state: ``"complete"`` or ``"pruned"``.
        uid: Identity used to drop duplicates (storage-independent).
        study: ``"<study name>"`` it came from.

    Example:
        >>> from metapeft_optuna.tasks import TaskCharacteristics
        >>> chars = TaskCharacteristics(64, 12, 30, "algorithmic", "classification", 0.4)
        >>> e = PEFTExperience(chars.to_vector(), PEFTMethod.LORA, {"method": "lora"},
        ...                    {"accuracy": 0.9, "peak_memory_mb": 600.0, "train_seconds": 20.0},
        ...                    20.0, 600.0, task_name="parity@64", task_characteristics=chars,
        ...                    uid="x")
        >>> e.complete, PEFTExperience.from_dict(e.to_dict()).accuracy
        (True, 0.9)
    """

    task_embedding: np.ndarray
    method_used: PEFTMethod
    hyperparameters: dict[str, Any]
    performance_metrics: dict[str, float | None]
    training_time: float | None
    memory_usage: float | None
    task_name: str = ""
    task_characteristics: TaskCharacteristics | None = None
    model_info: dict[str, Any] = field(default_factory=dict)
    learning_curve: tuple[dict[str, float], ...] = ()
    state: str = "complete"
    uid: str = ""
    study: str = ""

    @property
    def accuracy(self) -> float | None:
        return self.performance_metrics.get("accuracy")

    @property
    def quality(self) -> float | None:
        """How well the task was learned, higher is better: accuracy where measured,
        else minus val_loss (free-form answers). Comparable within one task only."""
        if self.accuracy is not None:
            return self.accuracy
        loss = self.performance_metrics.get("val_loss")
        return -loss if loss is not None else None

    @property
    def source_key(self) -> str:
        """Source-task identity: task and model (a study adds no new task)."""
        return f"{self.task_name}|{self.model_info.get('name', '')}"

    @property
    def complete(self) -> bool:
        return self.state == "complete" and self.quality is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "uid": self.uid,
            "study": self.study,
            "task_name": self.task_name,
            "state": self.state,
            "task_characteristics": (
                self.task_characteristics.to_dict() if self.task_characteristics else None
            ),
            "model_info": self.model_info,
            "method": self.method_used.value,
            "hyperparameters": self.hyperparameters,
            "performance_metrics": self.performance_metrics,
            "learning_curve": list(self.learning_curve),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PEFTExperience:
        chars = TaskCharacteristics.from_dict(data["task_characteristics"])
        metrics = data["performance_metrics"]
        return cls(
            task_embedding=chars.to_vector(),
            method_used=PEFTMethod(data["method"]),
            hyperparameters=dict(data["hyperparameters"]),
            performance_metrics=metrics,
            training_time=metrics.get("train_seconds"),
            memory_usage=metrics.get("peak_memory_mb"),
            task_name=data["task_name"],
            task_characteristics=chars,
            model_info=dict(data.get("model_info") or {}),
            learning_curve=tuple(data.get("learning_curve") or ()),
            state=data.get("state", "complete"),
            uid=data["uid"],
            study=data.get("study", ""),
        )


def experience_from_trial(
    trial: FrozenTrial,
    study_name: str,
    study_attrs: dict[str, Any],
    objectives: Sequence[str] = schema.DEFAULT_OBJECTIVES,
) -> PEFTExperience | None:
    """The experience of one trial, or None when it is not one (failed, running, ...).

    Args:
        trial: A trial of a PEFT study.
        study_name: Its study's name.
        study_attrs: Its study's user attributes (task and model).
        objectives: Its study's objective names (:func:`schema.study_objectives`): the
            trial's values are read by these names, never by position.
    """
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return None
    if "method" not in trial.params:
        return None
    task = study_attrs[schema.STUDY_TASK]
    chars = TaskCharacteristics.from_dict(task["characteristics"])
    values = trial.values if trial.state == TrialState.COMPLETE else None
    metrics: dict[str, float | None] = {}
    if values is not None:
        metrics = schema.trial_metrics(objectives, values, trial.user_attrs)
    if any(v is not None and not math.isfinite(v) for v in metrics.values()):
        return None
    model_info = dict(study_attrs.get(schema.STUDY_MODEL) or {})
    key = json.dumps(
        [
            task["name"],
            model_info.get("name"),
            study_name,
            trial.number,
            str(trial.datetime_start),
            trial.params,
        ],
        sort_keys=True,
        default=str,
    )
    return PEFTExperience(
        task_embedding=chars.to_vector(),
        method_used=PEFTMethod(trial.params["method"]),
        hyperparameters=dict(trial.params),
        performance_metrics=metrics,
        training_time=metrics.get("train_seconds"),
        memory_usage=metrics.get("peak_memory_mb"),
        task_name=task["name"],
        task_characteristics=chars,
        model_info=model_info,
        learning_curve=tuple(trial.user_attrs.get(schema.TRIAL_CURVE) or ()),
        state="complete" if values is not None else "pruned",
        uid=hashlib.sha1(key.encode()).hexdigest()[:16],
        study=study_name,
    )


class ExperienceBuffer:
    """A de-duplicated collection of :class:`PEFTExperience`, grouped by source task.

    Args:
        experiences: Initial experiences (duplicates by ``uid`` are dropped).
        capacity: Keep at most this many (the oldest are dropped first); None: no limit.

    Example:
        >>> buffer = ExperienceBuffer()
        >>> len(buffer), buffer.task_names()
        (0, [])
    """

    def __init__(self, experiences: Iterable[PEFTExperience] = (), capacity: int | None = None):
        self.capacity = capacity
        self._items: dict[str, PEFTExperience] = {}
        self.extend(experiences)

    # --- collection ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[PEFTExperience]:
        return iter(self._items.values())

    def add(self, experience: PEFTExperience) -> bool:
        """Add one experience; returns False when it was already present."""
        if experience.uid in self._items:
            return False
        self._items[experience.uid] = experience
        if self.capacity is not None and len(self._items) > self.capacity:
            self._items.pop(next(iter(self._items)))
        return True

    def extend(self, experiences: Iterable[PEFTExperience]) -> int:
        """Add many; returns how many were new."""
        return sum(self.add(e) for e in experiences)

    def complete(self) -> list[PEFTExperience]:
        """The experiences with final objective values."""
        return [e for e in self if e.complete]

    def by_task(self, complete_only: bool = True) -> dict[str, list[PEFTExperience]]:
        """Experiences grouped by source task (task and model)."""
        groups: dict[str, list[PEFTExperience]] = defaultdict(list)
        for e in self.complete() if complete_only else self:
            groups[e.source_key].append(e)
        return dict(groups)

    def task_names(self) -> list[str]:
        return sorted({e.task_name for e in self})

    def without_task(self, task_name: str) -> ExperienceBuffer:
        """A copy without one task's experiences (leave-one-task-out)."""
        return ExperienceBuffer(e for e in self if e.task_name != task_name)

    def sample(
        self, batch_size: int, rng: np.random.Generator, balanced: bool = True
    ) -> list[PEFTExperience]:
        """Experience replay: ``batch_size`` complete experiences drawn with replacement,
        each source task equally likely when ``balanced`` (so big tasks do not dominate)."""
        groups = list(self.by_task().values())
        if not groups:
            raise MetaLearningError("cannot sample from an empty experience buffer.")
        if not balanced:
            flat = [e for g in groups for e in g]
            return [flat[i] for i in rng.integers(len(flat), size=batch_size)]
        tasks = rng.integers(len(groups), size=batch_size)
        return [groups[t][int(rng.integers(len(groups[t])))] for t in tasks]

    # --- storages ----------------------------------------------------------------------
    @classmethod
    def from_storages(
        cls,
        storages: Sequence[str | optuna.storages.BaseStorage],
        exclude_studies: Sequence[str] = (),
    ) -> ExperienceBuffer:
        """Read every metapeft study of the given storages (URLs, journal paths, objects).

        Args:
            storages: Optuna storage URLs or objects; a path ending in ``.jsonl`` is read
                as a JSON Lines experience export instead.
            exclude_studies: Study names to skip (the study being optimised).
        """
        buffer = cls()
        for storage in storages:
            if isinstance(storage, str | Path) and str(storage).endswith(".jsonl"):
                buffer.extend(read_jsonl(storage))
            else:
                buffer.read_storage(storage, exclude_studies)
        return buffer

    def read_storage(
        self, storage: str | optuna.storages.BaseStorage, exclude_studies: Sequence[str] = ()
    ) -> int:
        """Add the experiences of one storage; returns how many were new."""
        storage = optuna.storages.get_storage(storage)
        added = 0
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            attrs = summary.user_attrs
            if summary.study_name in exclude_studies or schema.STUDY_TASK not in attrs:
                continue
            study_id = storage.get_study_id_from_name(summary.study_name)
            try:
                objectives = schema.objectives_of(
                    optuna.load_study(study_name=summary.study_name, storage=storage).metric_names,
                    summary.directions,
                )
            except ConfigError as exc:  # not a PEFT study's objectives: not experience
                warnings.warn(f"study {summary.study_name!r} skipped: {exc}", stacklevel=2)
                continue
            states = (TrialState.COMPLETE, TrialState.PRUNED)
            for trial in storage.get_all_trials(study_id, deepcopy=False, states=states):
                experience = experience_from_trial(trial, summary.study_name, attrs, objectives)
                if experience is not None:
                    added += self.add(experience)
        return added

    # --- JSON Lines ----------------------------------------------------------------------
    def export_jsonl(self, path: str | Path) -> Path:
        """Write every experience as one JSON line (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "w") as fh:
            for experience in self:
                fh.write(json.dumps(experience.to_dict(), sort_keys=True) + "\n")
        return path

    def import_jsonl(self, path: str | Path) -> int:
        """Add experiences from a JSON Lines export; returns how many were new."""
        return self.extend(read_jsonl(path))


def read_jsonl(path: str | Path) -> list[PEFTExperience]:
    """Parse an experience export, with file:line errors."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "experience file not found.")
    experiences = []
    with open(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if data.get("format_version", 1) > FORMAT_VERSION:
                    raise DataFormatError(
                        path,
                        line_no,
                        f"format_version "
                        f"{data['format_version']} is newer than this "
                        f"package reads ({FORMAT_VERSION}); upgrade it.",
                    )
                experiences.append(PEFTExperience.from_dict(data))
            except DataFormatError:
                raise
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DataFormatError(
                    path,
                    line_no,
                    f"not a metapeft experience record ({type(exc).__name__}: {exc}).",
                ) from exc
    return experiences
