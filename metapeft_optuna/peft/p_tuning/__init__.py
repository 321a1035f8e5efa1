"""P-tuning."""

from .adapter import PTuningAdapter
from .config import PTuningConfig
from .encoder import PromptEncoder

__all__ = ["PTuningAdapter", "PTuningConfig", "PromptEncoder"]
