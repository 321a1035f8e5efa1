"""``PEFTExperience``: one earlier fine-tune, and its JSON Lines form."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import schema
from ..errors import DataFormatError
from ..peft import PEFTMethod
from ..tasks import TaskCharacteristics

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PEFTExperience:
    """One earlier fine-tune.

    The seed's ``task_embedding``, ``training_time`` and ``memory_usage`` are read-only
    properties: the task's meta-features and two of the measured metrics.

    Attributes:
        task_characteristics: The source task's :class:`TaskCharacteristics`.
        method_used: The PEFT method.
        hyperparameters: The search-space parameters of the trial (``trial.params``).
        performance_metrics: Measured metrics by name (keys from ``schema.METRICS``:
            ``accuracy``, ``val_loss``, ``peak_memory_mb``, ``train_seconds``; plus
            ``accuracy_se``/``val_loss_se`` where recorded). A key is absent or None
            when the trial did not measure it (a pruned trial's final values).
        task_name: The source task.
        model_info: The fine-tuned model's info (``ModelInfo.to_dict()``).
        learning_curve: ``[{step, train_loss, val_loss, val_metric, train_seconds}]``.
        state: ``"complete"`` or ``"pruned"``.
        uid: Identity used to drop duplicates (storage-independent).
        study: ``"<study name>"`` it came from.
        quality_objective: What its study optimised for quality (``"accuracy"`` or
            ``"val_loss"``); empty when not recorded. A task re-scored by val_loss keeps
            trials that also measured accuracy, so :attr:`quality` must not guess.

    Example:
        >>> from metapeft_optuna.tasks import TaskCharacteristics
        >>> chars = TaskCharacteristics(64, 12, 30, "algorithmic", "classification", 0.4)
        >>> e = PEFTExperience(chars, PEFTMethod.LORA, {"method": "lora"},
        ...                    {"accuracy": 0.9, "peak_memory_mb": 600.0, "train_seconds": 20.0},
        ...                    task_name="parity@64", uid="x")
        >>> e.complete, PEFTExperience.from_dict(e.to_dict()).accuracy, e.training_time
        (True, 0.9, 20.0)
    """

    task_characteristics: TaskCharacteristics
    method_used: PEFTMethod
    hyperparameters: dict[str, Any]
    performance_metrics: dict[str, float | None]
    task_name: str = ""
    model_info: dict[str, Any] = field(default_factory=dict)
    learning_curve: tuple[dict[str, float], ...] = ()
    state: str = "complete"
    uid: str = ""
    study: str = ""
    quality_objective: str = ""

    @classmethod
    def measured(
        cls,
        task_characteristics: TaskCharacteristics,
        params: dict[str, Any],
        metrics: dict[str, float | None],
        *,
        model_info: dict[str, Any] | None = None,
        task_name: str = "",
        learning_curve: Sequence[dict[str, float]] = (),
        uid: str = "",
        study: str = "",
        quality_objective: str = "",
    ) -> PEFTExperience:
        """A complete experience: a configuration (``params``, search-space parameters
        with ``"method"``) and what it measured (``metrics`` by name)."""
        return cls(
            task_characteristics=task_characteristics,
            method_used=PEFTMethod(params["method"]),
            hyperparameters=dict(params),
            performance_metrics=dict(metrics),
            task_name=task_name,
            model_info=dict(model_info or {}),
            learning_curve=tuple(learning_curve),
            uid=uid,
            study=study,
            quality_objective=quality_objective,
        )

    @property
    def task_embedding(self) -> np.ndarray:
        """The task's raw meta-feature vector (``TaskCharacteristics.to_vector()``; the
        seed's name: the learned embedding is the task embedder's output)."""
        return self.task_characteristics.to_vector()

    @property
    def training_time(self) -> float | None:
        """Training seconds (``performance_metrics["train_seconds"]``), or None."""
        return self.performance_metrics.get("train_seconds")

    @property
    def memory_usage(self) -> float | None:
        """Peak memory in MB (``performance_metrics["peak_memory_mb"]``), or None."""
        return self.performance_metrics.get("peak_memory_mb")

    @property
    def accuracy(self) -> float | None:
        return self.performance_metrics.get("accuracy")

    @property
    def quality(self) -> float | None:
        """How well the task was learned, higher is better: :attr:`quality_metric`
        (accuracy, or minus val_loss). Comparable within one task only."""
        name = self.quality_metric
        value = self.performance_metrics.get(name)
        return None if value is None else -schema.OBJECTIVE_SPECS[name].sign * value

    @property
    def quality_metric(self) -> str:
        """The metric :attr:`quality` reads: the study's quality objective, else accuracy
        where measured, else val_loss (free-form answers)."""
        return self.quality_objective or ("accuracy" if self.accuracy is not None else "val_loss")

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
            "task_characteristics": self.task_characteristics.to_dict(),
            "model_info": self.model_info,
            "method": self.method_used.value,
            "hyperparameters": self.hyperparameters,
            "performance_metrics": self.performance_metrics,
            "learning_curve": list(self.learning_curve),
            "quality_objective": self.quality_objective,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PEFTExperience:
        return cls(
            task_characteristics=TaskCharacteristics.from_dict(data["task_characteristics"]),
            method_used=PEFTMethod(data["method"]),
            hyperparameters=dict(data["hyperparameters"]),
            performance_metrics=data["performance_metrics"],
            task_name=data["task_name"],
            model_info=dict(data.get("model_info") or {}),
            learning_curve=tuple(data.get("learning_curve") or ()),
            state=data.get("state", "complete"),
            uid=data["uid"],
            study=data.get("study", ""),
            quality_objective=data.get("quality_objective") or "",
        )


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
