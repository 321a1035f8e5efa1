"""The conditional PEFT search space, defined once for every sampler and for meta-learning.

``method`` is categorical; ``learning_rate``, ``steps`` and ``batch_size`` are shared;
every other parameter belongs to the methods that declare it in their package's search
module (:mod:`metapeft_optuna.peft.search`: LoRA-family parameters are shared by
``lora``, ``dora`` and ``adalora``, virtual-token parameters by the three prompt
methods). The same definitions serve four uses:

- :meth:`PEFTSearchSpace.suggest` asks an Optuna trial define-by-run (TPE, NSGA-II,
  Random, GP, ... all work);
- :meth:`PEFTSearchSpace.encode` turns a parameter dict into a fixed-length vector in
  ``[0, 1]`` (inactive parameters are 0) for the meta-model;
- :meth:`PEFTSearchSpace.sample` and :meth:`PEFTSearchSpace.perturb` draw random and
  neighbouring configurations for acquisition;
- :meth:`PEFTSearchSpace.to_hyperparameters` maps a configuration to ``fine_tune``'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ..errors import ConfigError
from ..peft import SEARCHES, ParamSpec, PEFTMethod
from ..peft.search import method_specs

ALL_METHODS = tuple(m.value for m in PEFTMethod)
# Cold-start values of the shared parameters (each method adds its learning rate).
SHARED_DEFAULTS = {"steps": 20, "batch_size": 8}

__all__ = ["ALL_METHODS", "PEFTSearchSpace", "ParamSpec", "default_specs", "in_distribution"]


def default_specs(
    learning_rate: tuple[float, float] = (1e-4, 1e-1),
    steps: tuple[int, int] | tuple[int, int, int] = (10, 200),
    batch_sizes: Sequence[int] = (4, 8, 16),
) -> list[ParamSpec]:
    """The product's search space: the shared training parameters (ranges chosen for
    short fine-tunes of small LMs), then every registered method's parameters.

    ``steps``: ``(low, high)`` on a log scale, or ``(low, high, step)`` on a linear grid.
    The default 10-200 on a log scale is the meta-dataset's (``docs/meta-dataset.md``):
    in 10-30 steps half of its first tasks never left chance.
    """
    low, high = learning_rate
    if not 0 < low <= high:
        raise ConfigError(
            f"default_specs: learning_rate={learning_rate!r} must be (low, high) with "
            "0 < low <= high."
        )
    if len(steps) not in (2, 3) or not 1 <= steps[0] <= steps[1] or min(steps[2:], default=1) < 1:
        raise ConfigError(
            f"default_specs: steps={steps!r} must be (low, high) or (low, high, step) with "
            "1 <= low <= high and step >= 1."
        )
    step_distribution = (
        IntDistribution(steps[0], steps[1], step=steps[2])
        if len(steps) == 3
        else IntDistribution(steps[0], steps[1], log=True)
    )
    if not batch_sizes or any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ConfigError(
            f"default_specs: batch_sizes={tuple(batch_sizes)!r} must be one or more "
            "positive integers."
        )
    every = ALL_METHODS
    return [
        ParamSpec("learning_rate", FloatDistribution(*learning_rate, log=True), every),
        ParamSpec("steps", step_distribution, every),
        ParamSpec("batch_size", CategoricalDistribution(tuple(batch_sizes)), every),
        *method_specs(ALL_METHODS),
    ]


class PEFTSearchSpace:
    """The conditional space over PEFT method and hyperparameters.

    Args:
        methods: Methods to search (default: all six).
        specs: Parameter definitions (default: :func:`default_specs`).

    Example:
        >>> import optuna
        >>> space = PEFTSearchSpace(methods=("lora", "prompt_tuning"))
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> trial = study.ask()
        >>> method, hyperparameters = space.suggest(trial, num_layers=30)
        >>> {"learning_rate", "steps", "batch_size"} <= set(hyperparameters)
        True
        >>> space.encode(trial.params).shape == (space.dimension,)
        True
    """

    def __init__(
        self,
        methods: Sequence[str | PEFTMethod] = ALL_METHODS,
        specs: Sequence[ParamSpec] | None = None,
    ):
        names = [m.value if isinstance(m, PEFTMethod) else str(m) for m in methods]
        unknown = [n for n in names if n not in ALL_METHODS]
        if unknown or not names:
            raise ConfigError(
                f"PEFTSearchSpace: methods={names!r}: "
                f"{'unknown ' + ', '.join(unknown) if unknown else 'none given'}; choose from "
                f"{', '.join(ALL_METHODS)}."
            )
        self.methods = tuple(names)
        self.specs = [
            s for s in (specs or default_specs()) if any(m in self.methods for m in s.methods)
        ]
        self._features = self._feature_layout()

    # --- Optuna ------------------------------------------------------------------------
    @property
    def method_distribution(self) -> CategoricalDistribution:
        return CategoricalDistribution(self.methods)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every parameter's distribution, ``method`` first."""
        return {"method": self.method_distribution, **{s.name: s.distribution for s in self.specs}}

    def active_specs(self, params: dict[str, Any]) -> list[ParamSpec]:
        """The parameters a configuration uses, in definition order (conditions apply to
        parameters defined before)."""
        return [s for s in self.specs if s.active(params)]

    def suggest(self, trial: Any, num_layers: int, init_text: str = "") -> tuple[str, dict]:
        """Suggest a configuration on ``trial`` (define-by-run) and return it as
        ``(method, hyperparameters)`` for :func:`~metapeft_optuna.training.fine_tune`.

        Raises:
            ConfigError: An enqueued parameter the space does not have, or an enqueued
                value outside its distribution (naming the parameter).
        """
        self._check_enqueued(trial)
        params: dict[str, Any] = {"method": _suggest(trial, "method", self.method_distribution)}
        for spec in self.specs:
            if spec.active(params):
                params[spec.name] = _suggest(trial, spec.name, spec.distribution)
        return self.to_hyperparameters(params, num_layers, init_text)

    def _check_enqueued(self, trial: Any) -> None:
        """Optuna ignores an enqueued parameter the space does not have: say so instead."""
        storage = getattr(trial, "storage", None)  # a FixedTrial has none
        if storage is None:
            return
        fixed = storage.get_trial_system_attrs(trial._trial_id).get("fixed_params") or {}
        known = self.distributions()
        unknown = sorted(set(fixed) - set(known))
        if unknown:
            raise ConfigError(
                f"enqueued parameter(s) {', '.join(unknown)} are not in the search space; "
                f"its parameters are {', '.join(known)}."
            )

    def sample(self, rng: np.random.Generator, method: str | None = None) -> dict[str, Any]:
        """A random configuration (uniform on each distribution, log-uniform where log)."""
        params: dict[str, Any] = {"method": method or self.methods[rng.integers(len(self.methods))]}
        for spec in self.specs:
            if spec.active(params):
                params[spec.name] = _sample(rng, spec.distribution)
        return params

    def sample_completion(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """``params`` made valid: active parameters kept when in range, the missing or
        out-of-range ones sampled, inactive ones dropped."""
        out: dict[str, Any] = {"method": params["method"]}
        for spec in self.specs:
            if spec.active(out):
                value = params.get(spec.name)
                out[spec.name] = (
                    value
                    if in_distribution(spec.distribution, value)
                    else _sample(rng, spec.distribution)
                )
        return out

    def defaults(self, method: str) -> dict[str, Any]:
        """The method's cold-start configuration: its declared defaults and the shared
        ones (:data:`SHARED_DEFAULTS`), unconditional parameters only."""
        declared = SEARCHES[PEFTMethod(method)].defaults
        return {"method": method, **SHARED_DEFAULTS, **declared}

    def perturb(
        self, params: dict[str, Any], rng: np.random.Generator, scale: float = 0.15
    ) -> dict[str, Any]:
        """A neighbour of ``params`` (same method): each numeric value moved by a
        Gaussian step of ``scale`` times its range (on the log scale where the
        distribution is log), each ordered choice by at most one place, one parameter
        in five drawn afresh; parameters a changed condition switches on are sampled."""
        fresh = self.sample(rng, params["method"])
        out = {"method": params["method"]}
        distributions = self.distributions()
        for name, value in fresh.items():
            if name == "method":
                continue
            if name not in params or rng.random() < 0.2:
                out[name] = value
                continue
            out[name] = _jitter(distributions[name], params[name], rng, scale)
        return self.sample_completion(out, rng)

    def contains(self, params: dict[str, Any]) -> bool:
        """Whether ``params`` holds exactly the active parameters, each in its range."""
        if params.get("method") not in self.methods:
            return False
        active = self.active_specs(params)
        if set(params) != {"method", *(s.name for s in active)}:
            return False
        return all(in_distribution(s.distribution, params[s.name]) for s in active)

    def max_virtual_tokens(self) -> int:
        """The most virtual tokens a configuration of this space prepends (0 without
        prompt methods): the context room examples must leave."""
        specs = [s for s in self.specs if s.name == "num_virtual_tokens"]
        return int(max((s.distribution.high for s in specs), default=0))

    # --- fine_tune hyperparameters ------------------------------------------------------
    @staticmethod
    def to_hyperparameters(
        params: dict[str, Any], num_layers: int, init_text: str = ""
    ) -> tuple[str, dict[str, Any]]:
        """Map search-space parameters to ``(method, hyperparameters)`` for ``fine_tune``:
        the shared training keys plus the method's adapter keys (its
        :class:`~metapeft_optuna.peft.MethodSearch` mapping)."""
        method = params["method"]
        hp: dict[str, Any] = {
            "learning_rate": float(params["learning_rate"]),
            "steps": int(params["steps"]),
            "batch_size": int(params["batch_size"]),
        }
        hp.update(SEARCHES[PEFTMethod(method)].hyperparameters(params, num_layers, init_text))
        return method, hp

    # --- encoding -------------------------------------------------------------------------
    def _feature_layout(self) -> list[tuple[str, str, Any]]:
        layout = [("method", "onehot", m) for m in self.methods]
        for spec in self.specs:
            dist = spec.distribution
            if isinstance(dist, CategoricalDistribution) and _is_string_choice(dist):
                layout += [(spec.name, "onehot", c) for c in dist.choices]
            else:
                layout.append((spec.name, "scalar", None))
        return layout

    @property
    def dimension(self) -> int:
        return len(self._features)

    def feature_names(self) -> list[str]:
        return [
            f"{name}={choice}" if kind == "onehot" else name
            for name, kind, choice in self._features
        ]

    def encode(self, params: dict[str, Any]) -> np.ndarray:
        """A ``[0, 1]`` vector; parameters the configuration does not use are 0."""
        distributions = self.distributions()
        vector = np.zeros(self.dimension, dtype=np.float32)
        for i, (name, kind, choice) in enumerate(self._features):
            if name not in params:
                continue
            if kind == "onehot":
                vector[i] = float(params[name] == choice)
            else:
                vector[i] = _scale(distributions[name], params[name])
        return vector


def in_distribution(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a valid value of ``distribution`` (None never is).

    Example:
        >>> in_distribution(IntDistribution(1, 4), 3), in_distribution(IntDistribution(1, 4), 9)
        (True, False)
    """
    if value is None:
        return False
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _is_string_choice(dist: CategoricalDistribution) -> bool:
    return any(isinstance(c, str) for c in dist.choices)


def _scale(dist: BaseDistribution, value: Any) -> float:
    """Position of ``value`` in its distribution's range, in [0, 1]."""
    if isinstance(dist, CategoricalDistribution):
        if all(isinstance(c, bool) for c in dist.choices):
            return float(bool(value))
        numbers = [float(c) for c in dist.choices]
        low, high, x = min(numbers), max(numbers), float(value)
        if low > 0:
            low, high, x = math.log(low), math.log(high), math.log(x)
        return 0.0 if high == low else (x - low) / (high - low)
    low, high, x = float(dist.low), float(dist.high), float(value)
    if getattr(dist, "log", False):
        low, high, x = math.log(low), math.log(high), math.log(x)
    return 0.0 if high == low else (x - low) / (high - low)


def _suggest(trial: Any, name: str, dist: BaseDistribution) -> Any:
    try:
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        if isinstance(dist, IntDistribution):
            return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        return trial.suggest_categorical(name, dist.choices)
    except ValueError as exc:  # an enqueued value Optuna cannot store
        raise ConfigError(
            f"parameter {name}: {exc} An enqueued value must lie in {_describe(dist)}."
        ) from None


def _describe(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return f"{list(dist.choices)}"
    return f"[{dist.low}, {dist.high}]"


def _sample(rng: np.random.Generator, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(rng.integers(len(dist.choices)))]
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        x = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        x = rng.uniform(low, high)
    if dist.step is not None:
        x = low + round((x - low) / dist.step) * dist.step
    x = min(max(x, low), high)
    return int(round(x)) if isinstance(dist, IntDistribution) else float(x)


def _jitter(distribution: BaseDistribution, value: Any, rng: np.random.Generator, scale: float):
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        if value not in choices:
            return choices[int(rng.integers(len(choices)))]
        i = choices.index(value) + int(rng.integers(-1, 2))
        return choices[min(max(i, 0), len(choices) - 1)]
    low, high = float(distribution.low), float(distribution.high)
    if distribution.log:
        x = float(np.exp(np.log(value) + rng.normal(0, scale) * (np.log(high) - np.log(low))))
    else:
        x = float(value + rng.normal(0, scale) * (high - low))
    if distribution.step is not None:
        x = low + round((x - low) / distribution.step) * distribution.step
    x = min(max(x, low), high)
    return int(round(x)) if isinstance(distribution, IntDistribution) else x
