"""Prefix tuning."""

from .adapter import PrefixProjection, PrefixTuningAdapter
from .cache import PrefixCache
from .config import PrefixTuningConfig

__all__ = ["PrefixCache", "PrefixProjection", "PrefixTuningAdapter", "PrefixTuningConfig"]
