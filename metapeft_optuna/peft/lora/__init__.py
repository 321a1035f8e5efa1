"""LoRA and DoRA."""

from . import search  # noqa: F401  (registers the part of the search space)
from .adapter import DoRAModelAdapter, LoRAModelAdapter
from .config import DoRAConfig, LoRAConfig

__all__ = ["DoRAConfig", "DoRAModelAdapter", "LoRAConfig", "LoRAModelAdapter"]
