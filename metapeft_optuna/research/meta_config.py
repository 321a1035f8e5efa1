"""Experiment configuration (``MetaLearningConfig``) with YAML round trips."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..validation import check_int, check_number

ALGORITHMS = ("reptile", "maml")


@dataclass
class MetaLearningConfig:
    """Configuration for meta-learning experiments.

    Attributes:
        algorithm: Meta-learning algorithm ("reptile" or "maml").
        meta_batch_size: Number of tasks per meta-update.
        num_meta_iterations: Total meta-training iterations.
        inner_lr: Task adaptation learning rate.
        outer_lr: Meta-learning rate.
        num_inner_steps: Gradient steps per task.
        eval_interval: Iterations between evaluations.
        save_interval: Iterations between checkpoints.

    Example:
        >>> cfg = MetaLearningConfig(algorithm="maml", inner_lr=0.05)
        >>> MetaLearningConfig(**cfg.to_dict()) == cfg
        True
    """

    algorithm: str = "reptile"
    meta_batch_size: int = 4
    num_meta_iterations: int = 1000
    inner_lr: float = 0.01
    outer_lr: float = 0.001
    num_inner_steps: int = 5
    eval_interval: int = 100
    save_interval: int = 500

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"algorithm={self.algorithm!r} is not supported; use one of {ALGORITHMS}."
            )
        for name in (
            "meta_batch_size",
            "num_meta_iterations",
            "num_inner_steps",
            "eval_interval",
            "save_interval",
        ):
            check_int("MetaLearningConfig", name, getattr(self, name))
        for name in ("inner_lr", "outer_lr"):
            check_number("MetaLearningConfig", name, getattr(self, name), 0, low_open=True)

    @classmethod
    def from_yaml(cls, path: str | Path) -> MetaLearningConfig:
        """Load configuration from a YAML file.

        Args:
            path: Path to a YAML mapping whose keys are this class's fields.

        Returns:
            The loaded configuration; missing keys keep their defaults.

        Raises:
            ConfigError: The file is missing, is not a mapping, or has unknown keys
                or invalid values.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: expected a mapping of field: value, got {type(data).__name__}."
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown}; valid keys are {sorted(known)}.")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Convert configuration to a plain dictionary."""
        return asdict(self)

    def to_yaml(self, path: str | Path) -> None:
        """Write this configuration as YAML (atomically)."""
        from ..atomic import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
