"""Prefix tuning."""

from ..prefix_cache import PrefixCache
from . import search  # noqa: F401  (registers the part of the search space)
from .adapter import PrefixProjection, PrefixTuningAdapter
from .config import PrefixTuningConfig

__all__ = ["PrefixCache", "PrefixProjection", "PrefixTuningAdapter", "PrefixTuningConfig"]
