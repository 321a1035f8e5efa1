"""AdaLoRA."""

from . import search  # noqa: F401  (registers the part of the search space)
from .adapter import AdaLoRAModelAdapter
from .allocator import RankAllocator
from .config import AdaLoRAConfig
from .layers import SVDLinear

__all__ = ["AdaLoRAConfig", "AdaLoRAModelAdapter", "RankAllocator", "SVDLinear"]
