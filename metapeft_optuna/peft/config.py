"""Shared behaviour of the per-method config dataclasses: validation and dict round trips."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from .. import validation
from ..errors import AdapterCreationError


@dataclass
class AdapterConfig:
    """Base class of every method's config. Subclasses validate in ``validate``.

    Example:
        >>> from metapeft_optuna.peft import LoRAConfig
        >>> LoRAConfig.from_dict({"r": 4, "lora_alpha": 8}).to_dict()["rank"]
        4
    """

    method_name: ClassVar[str] = "adapter"
    # Accepted spellings from other libraries -> field name.
    aliases: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`AdapterCreationError` saying which field to change and how."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        """Build from a plain dict, accepting aliases; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = cls.aliases.get(key, key)
            if name not in names:
                raise AdapterCreationError(
                    f"{cls.method_name}: unknown config key {key!r}; valid keys are "
                    f"{sorted(names)}."
                )
            values[name] = tuple(value) if isinstance(value, list) else value
        try:
            return cls(**values)
        except TypeError as exc:
            raise AdapterCreationError(f"{cls.method_name}: {exc}") from exc

    @classmethod
    def for_training(cls, config: dict[str, Any], steps: int) -> dict[str, Any]:
        """``config`` completed with what depends on the number of training ``steps``
        (nothing here; AdaLoRA's rank schedule does)."""
        return config

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


# The shared checks (metapeft_optuna.validation), raising AdapterCreationError.
def check_int(method: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    """Raise unless ``value`` is an integer in ``[low, high]``."""
    validation.check_int(method, name, value, low, high, error=AdapterCreationError)


def check_float(
    method: str,
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    low_inclusive: bool = True,
) -> None:
    """Raise unless ``value`` is a finite number in the given range."""
    validation.check_number(
        method, name, value, low, high, low_open=not low_inclusive, error=AdapterCreationError
    )


def check_choice(method: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    validation.check_choice(method, name, value, choices, error=AdapterCreationError)
