"""PEFT methods for MLX models: LoRA, DoRA, AdaLoRA, prompt, prefix and P-tuning.

Each method lives in its own sub-package with a config dataclass, an adapter class and
its part of the search space, and registers the adapter with :class:`AdapterFactory` and
the search part (:class:`MethodSearch`) on import.
"""

from .adalora import AdaLoRAConfig, AdaLoRAModelAdapter, RankAllocator, SVDLinear
from .base import BaseAdapter
from .config import AdapterConfig
from .io import load_adapter, read_adapter_config, save_adapter, save_mlx_lm_adapter
from .lora import DoRAConfig, DoRAModelAdapter, LoRAConfig, LoRAModelAdapter
from .method import PEFTMethod
from .p_tuning import PromptEncoder, PTuningAdapter, PTuningConfig
from .prefix_tuning import PrefixCache, PrefixTuningAdapter, PrefixTuningConfig
from .prompt_tuning import PromptTuningAdapter, PromptTuningConfig
from .registry import ADAPTERS, AdapterFactory, config_class, resolve_method
from .search import SEARCHES, MethodSearch, ParamSpec, register_search

__all__ = [
    "ADAPTERS",
    "AdaLoRAConfig",
    "AdaLoRAModelAdapter",
    "AdapterConfig",
    "AdapterFactory",
    "BaseAdapter",
    "DoRAConfig",
    "DoRAModelAdapter",
    "LoRAConfig",
    "LoRAModelAdapter",
    "MethodSearch",
    "PEFTMethod",
    "ParamSpec",
    "PTuningAdapter",
    "PTuningConfig",
    "PrefixCache",
    "PrefixTuningAdapter",
    "PrefixTuningConfig",
    "PromptEncoder",
    "PromptTuningAdapter",
    "PromptTuningConfig",
    "RankAllocator",
    "SEARCHES",
    "SVDLinear",
    "config_class",
    "load_adapter",
    "read_adapter_config",
    "register_search",
    "resolve_method",
    "save_adapter",
    "save_mlx_lm_adapter",
]
