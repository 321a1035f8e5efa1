"""LoRA and DoRA."""

from .adapter import DoRAModelAdapter, LoRAModelAdapter
from .config import DoRAConfig, LoRAConfig

__all__ = ["DoRAConfig", "DoRAModelAdapter", "LoRAConfig", "LoRAModelAdapter"]
