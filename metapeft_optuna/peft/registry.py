"""The method registry (filled by each method's package) and ``AdapterFactory``."""

from __future__ import annotations

from typing import Any

import mlx.nn as nn

from ..errors import AdapterCreationError
from .base import BaseAdapter
from .config import AdapterConfig
from .method import PEFTMethod

ADAPTERS: dict[PEFTMethod, type[BaseAdapter]] = {}


def register_adapter(cls: type[BaseAdapter]) -> type[BaseAdapter]:
    """Class decorator: make ``cls`` the adapter of ``cls.method``.

    Raises:
        AdapterCreationError: The method has an adapter already (one per method, as HF
            peft's registry allows).
    """
    if cls.method in ADAPTERS:
        raise AdapterCreationError(
            f"{cls.method}: {ADAPTERS[cls.method].__name__} is its adapter already; "
            f"register {cls.__name__} under a method of its own."
        )
    ADAPTERS[cls.method] = cls
    return cls


def resolve_method(adapter_type: str | PEFTMethod) -> PEFTMethod:
    """The :class:`PEFTMethod` for a name (case-insensitive, ``-`` or ``_``)."""
    if isinstance(adapter_type, PEFTMethod):
        return adapter_type
    key = str(adapter_type).strip().lower().replace("-", "_")
    try:
        return PEFTMethod(key)
    except ValueError:
        raise AdapterCreationError(
            f"unknown adapter type {adapter_type!r}; use one of {[m.value for m in PEFTMethod]}."
        ) from None


def config_class(method: str | PEFTMethod) -> type[AdapterConfig]:
    """The configuration dataclass of a registered method (raises
    ``AdapterCreationError`` for an unknown one, naming the methods there are)."""
    return ADAPTERS[resolve_method(method)].config_class


class AdapterFactory:
    """Factory for creating PEFT adapters.

    Supports LoRA, DoRA, AdaLoRA, prompt tuning, prefix tuning and P-tuning.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> config = {"rank": 8, "alpha": 16, "dropout": 0.1}
        >>> adapter = AdapterFactory.create_adapter("lora", model, config)
        >>> adapter.num_trainable_parameters
        3584
    """

    @staticmethod
    def create_adapter(
        adapter_type: str | PEFTMethod,
        model: nn.Module,
        config: dict[str, Any] | AdapterConfig | None = None,
        *,
        tokenizer: Any = None,
    ) -> BaseAdapter:
        """Create a PEFT adapter for ``model``.

        Args:
            adapter_type: Type of adapter (``"lora"``, ``"dora"``, ``"adalora"``,
                ``"prompt_tuning"``, ``"prefix_tuning"``, ``"p_tuning"``).
            model: Base model to adapt (frozen; layer-replacing methods modify it).
            config: Adapter configuration as a dict or the method's config dataclass;
                None uses the defaults.
            tokenizer: Needed only to initialise prompt tuning from a text.

        Returns:
            The initialised adapter, a :class:`BaseAdapter`.

        Raises:
            AdapterCreationError: Unknown type, invalid config, or a model the method
                cannot attach to.
        """
        method = resolve_method(adapter_type)
        cls = ADAPTERS[method]
        if config is None:
            config = cls.config_class()
        elif isinstance(config, dict):
            config = cls.config_class.from_dict(config)
        elif not isinstance(config, cls.config_class):
            raise AdapterCreationError(
                f"{method}: config must be a dict or a "
                f"{cls.config_class.__name__}, got "
                f"{type(config).__name__}."
            )
        try:
            return cls(model, config, tokenizer=tokenizer)
        except AdapterCreationError:
            raise
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            raise AdapterCreationError(
                f"{method} cannot attach to {type(model).__name__}: {exc}"
            ) from exc
