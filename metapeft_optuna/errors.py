"""The exception hierarchy. Every error a user can cause is a :class:`MetaLearningError`."""

from __future__ import annotations


class MetaLearningError(Exception):
    """Base exception for meta-learning errors."""


class TaskSamplingError(MetaLearningError):
    """Error during task sampling (for example an unknown task id)."""


class AdapterCreationError(MetaLearningError):
    """A PEFT adapter cannot be created: unknown type, bad config, or incompatible model."""


class ConfigError(MetaLearningError, ValueError):
    """A configuration value is invalid; the message names the field and a valid value."""


class ModelLoadError(MetaLearningError):
    """A model spec cannot be resolved or its files cannot be read."""


class DataFormatError(MetaLearningError, ValueError):
    """A data file is malformed. ``str(error)`` starts with ``file:line:``.

    Attributes:
        path: The offending file.
        line: 1-based line (JSONL) or row (CSV, counting the header) number, if known.
    """

    def __init__(self, path: object, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class UnknownTaskError(TaskSamplingError, KeyError):
    """A task name is neither a built-in task nor an existing data file."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class NotFittedError(MetaLearningError):
    """A learned component was used before ``fit`` (scikit-learn convention)."""


class TrialFailedError(MetaLearningError):
    """A fine-tune could not complete (NaN loss, memory ceiling, config that does not fit)."""
