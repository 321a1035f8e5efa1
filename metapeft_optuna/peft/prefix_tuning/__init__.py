"""Prefix tuning."""

from . import search  # noqa: F401  (registers the part of the search space)
from .adapter import PrefixProjection, PrefixTuningAdapter
from .cache import PrefixCache
from .config import PrefixTuningConfig

__all__ = ["PrefixCache", "PrefixProjection", "PrefixTuningAdapter", "PrefixTuningConfig"]
