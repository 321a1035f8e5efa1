"""Prompt tuning."""

from .adapter import PromptTuningAdapter
from .config import PromptTuningConfig

__all__ = ["PromptTuningAdapter", "PromptTuningConfig"]
