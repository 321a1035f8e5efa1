"""LoRA and DoRA."""

from .adapter import DoRAModelAdapter, LoRAModelAdapter
from .config import DoRAConfig, LoRAConfig
from .layers import LoRAAdapter

__all__ = ["DoRAConfig", "DoRAModelAdapter", "LoRAAdapter", "LoRAConfig", "LoRAModelAdapter"]
