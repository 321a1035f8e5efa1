"""How each PEFT method is searched: its parameters, cold-start defaults and mapping.

Every method's package declares one :class:`MethodSearch` and registers it with
:func:`register_search` (a second registration of a method is refused, as HF peft's
registry refuses one). :class:`~metapeft_optuna.training.PEFTSearchSpace` is assembled
from the registry: shared training parameters first, then every method's parameters in
:class:`PEFTMethod` order, a parameter declared by several methods (LoRA's alpha by
LoRA, DoRA and AdaLoRA) appearing once with all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution

from ..errors import ConfigError
from .method import PEFTMethod


@dataclass(frozen=True)
class ParamSpec:
    """One search parameter: its distribution, the methods that use it, an optional
    condition on the parameters defined before it.

    Example:
        >>> from optuna.distributions import CategoricalDistribution
        >>> spec = ParamSpec("lora_rank", CategoricalDistribution((4, 8)), ("lora", "dora"))
        >>> spec.active({"method": "dora"}), spec.active({"method": "prompt_tuning"})
        (True, False)
    """

    name: str
    distribution: BaseDistribution
    methods: tuple[str, ...] = ()
    condition: Callable[[dict[str, Any]], bool] | None = None

    def active(self, params: dict[str, Any]) -> bool:
        """Whether a configuration (``{"method", ...}``) uses this parameter."""
        return params.get("method") in self.methods and (
            self.condition is None or self.condition(params)
        )


# (search-space parameters, number of transformer blocks, text for prompt
# initialisation) -> the method's adapter config keys for ``fine_tune``.
HyperparameterMap = Callable[[Mapping[str, Any], int, str], dict[str, Any]]


@dataclass(frozen=True)
class MethodSearch:
    """One method's part of the search space.

    Attributes:
        method: The PEFT method.
        params: Its parameters beside the shared ``learning_rate``, ``steps`` and
            ``batch_size`` (their ``methods`` are filled in when the space is built).
        defaults: Cold-start values: ``learning_rate`` and every parameter in ``params``
            (unconditional ones at least).
        hyperparameters: Maps a configuration to the method's adapter config keys.
    """

    method: PEFTMethod
    params: tuple[ParamSpec, ...]
    defaults: Mapping[str, Any]
    hyperparameters: HyperparameterMap


SEARCHES: dict[PEFTMethod, MethodSearch] = {}


def register_search(search: MethodSearch) -> MethodSearch:
    """Register ``search`` as its method's part of the search space.

    Raises:
        ConfigError: The method is registered already.
    """
    if search.method in SEARCHES:
        raise ConfigError(
            f"{search.method}: a search space is registered for it already; a method "
            "declares its parameters once (in its package's search module)."
        )
    SEARCHES[search.method] = search
    return search


def method_specs(methods: tuple[str, ...]) -> list[ParamSpec]:
    """The parameters of ``methods`` (in :class:`PEFTMethod` order), each once with
    every method that declares it.

    Raises:
        ConfigError: A method is not registered, or two methods declare one parameter
            with different distributions or conditions.
    """
    specs: dict[str, ParamSpec] = {}
    for method in PEFTMethod:
        if method.value not in methods:
            continue
        if method not in SEARCHES:
            raise ConfigError(f"{method}: no search space is registered for it.")
        for spec in SEARCHES[method].params:
            seen = specs.get(spec.name)
            if seen is None:
                specs[spec.name] = ParamSpec(
                    spec.name, spec.distribution, (method.value,), spec.condition
                )
            elif (seen.distribution, seen.condition) != (spec.distribution, spec.condition):
                raise ConfigError(
                    f"{spec.name}: declared differently by {seen.methods[0]} and {method}; "
                    "methods that share a parameter share its declaration."
                )
            else:
                specs[spec.name] = ParamSpec(
                    spec.name, spec.distribution, (*seen.methods, method.value), spec.condition
                )
    return list(specs.values())
