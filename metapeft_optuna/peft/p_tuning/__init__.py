"""P-tuning."""

from . import search  # noqa: F401  (registers the part of the search space)
from .adapter import PTuningAdapter
from .config import PTuningConfig
from .encoder import PromptEncoder

__all__ = ["PTuningAdapter", "PTuningConfig", "PromptEncoder"]
