"""Prompt tuning."""

from . import search  # noqa: F401  (registers the part of the search space)
from .adapter import PromptTuningAdapter
from .config import PromptTuningConfig

__all__ = ["PromptTuningAdapter", "PromptTuningConfig"]
