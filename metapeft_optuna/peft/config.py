"""Shared behaviour of the per-method config dataclasses: validation and dict round trips."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def check_int(method: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    """Raise unless ``low <= value (<= high)`` and ``value`` is an int."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise AdapterCreationError(f"{method}: {name}={value!r} must be an integer {bound}.")


def check_float(
    method: str,
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    low_inclusive: bool = True,
) -> None:
    """Raise unless ``value`` is a number in the given range."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        ok = value >= low if low_inclusive else value > low
        ok = ok and (high is None or value <= high)
    if not ok:
        lower = f">= {low}" if low_inclusive else f"> {low}"
        bound = lower if high is None else f"{lower} and <= {high}"
        raise AdapterCreationError(f"{method}: {name}={value!r} must be a number {bound}.")


def check_choice(method: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise AdapterCreationError(f"{method}: {name}={value!r}; use one of {choices}.")
