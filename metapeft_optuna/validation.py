"""Argument checks shared by every public constructor: one line naming the owner, the
argument, the value given and what it must be.

Errors are :class:`~metapeft_optuna.errors.ConfigError` (a ``ValueError``) unless the
caller names another class (adapter configs raise ``AdapterCreationError``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .errors import ConfigError


def check_int(
    owner: str,
    name: str,
    value: Any,
    low: int = 1,
    high: int | None = None,
    *,
    optional: bool = False,
    error: type[Exception] = ConfigError,
) -> None:
    """Raise ``error`` unless ``value`` is an integer in ``[low, high]`` (None passes
    when ``optional``).

    Example:
        >>> check_int("MetaPEFTSampler", "n_warm_start", 0)
        Traceback (most recent call last):
        ...
        metapeft_optuna.errors.ConfigError: MetaPEFTSampler: n_warm_start=0 must be an integer >= 1.
    """
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise error(f"{owner}: {name}={value!r} must be an integer {bound}{_none(optional)}.")


def check_number(
    owner: str,
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
    error: type[Exception] = ConfigError,
) -> None:
    """Raise ``error`` unless ``value`` is a finite number within the bounds (open
    where ``low_open``/``high_open``; None passes when ``optional``).

    Example:
        >>> check_number("Pruner", "threshold", 1.0, 0, 1, low_open=True, high_open=True)
        Traceback (most recent call last):
        ...
        metapeft_optuna.errors.ConfigError: Pruner: threshold=1.0 must be a number > 0 and < 1.
    """
    if value is None and optional:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        bound = " and ".join(bounds) or "finite"
        raise error(f"{owner}: {name}={value!r} must be a number {bound}{_none(optional)}.")


def check_choice(
    owner: str,
    name: str,
    value: Any,
    choices: Collection[Any],
    *,
    error: type[Exception] = ConfigError,
) -> None:
    """Raise ``error`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise error(f"{owner}: {name}={value!r}; use one of {tuple(choices)}.")


def require_torch(owner: str, what: str, instead: str) -> None:
    """Raise :class:`ConfigError` unless torch, which the product does not install, is
    there: ``what`` (an Optuna sampler) needs it; ``instead`` says what to do without it."""
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            f"{owner}: {what} needs torch, which is not installed; install it (pip install "
            f"torch, CPU wheels: --index-url https://download.pytorch.org/whl/cpu) {instead}."
        )


def check_writable(
    name: str, path: str | Path, *, folder: bool, error: type[Exception] = ConfigError
) -> None:
    """Raise ``error`` unless ``path`` can be written as a file (or used as a folder when
    ``folder``): it is of that kind or missing, and the nearest existing folder on its
    way is writable. Nothing is created.

    Example:
        >>> check_writable("--plot", "/proc/version/a.png", folder=False)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        metapeft_optuna.errors.ConfigError: --plot ...: cannot be created: /proc/version is a...
    """
    path = Path(path).expanduser()
    want = "a folder" if folder else "a file"
    if path.exists():
        if path.is_dir() != folder:
            raise error(
                f"{name} {path}: {'a folder' if folder is False else 'a file'}, not "
                f"{want}; name {want}."
            )
        nearest = path if folder else path.parent
    else:
        nearest = next(p for p in path.absolute().parents if p.exists())
        if not nearest.is_dir():
            raise error(
                f"{name} {path}: cannot be created: {nearest} is a file; name another "
                f"{want.split()[1]}."
            )
    if not os.access(nearest, os.W_OK | os.X_OK) or (
        path.is_file() and not os.access(path, os.W_OK)
    ):
        raise error(f"{name} {path}: {nearest} is not writable; choose a writable location.")


def _none(optional: bool) -> str:
    return " (or None)" if optional else ""
