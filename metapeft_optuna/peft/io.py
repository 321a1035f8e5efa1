"""Adapter files: ``adapter_config.json`` + ``adapters.safetensors`` (mlx-lm's shape).

LoRA and DoRA files are exactly what ``mlx_lm.generate --adapter-path`` and
``mlx_lm.fuse`` read. The other methods use the same two files with a
``fine_tune_type`` naming the method and load back through :func:`load_adapter`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ..atomic import atomic_directory
from ..errors import AdapterCreationError
from .base import BaseAdapter
from .registry import AdapterFactory, resolve_method

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapters.safetensors"


def save_adapter(adapter: BaseAdapter, path: str | Path) -> Path:
    """Write ``adapter`` to the directory ``path`` (replacing it atomically).

    Example:
        >>> import tempfile
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.peft import AdapterFactory
        >>> model, _, _ = load_model("tiny")
        >>> adapter = AdapterFactory.create_adapter("lora", model, {"rank": 4})
        >>> out = save_adapter(adapter, tempfile.mkdtemp() + "/lora")
        >>> sorted(p.name for p in out.iterdir())
        ['adapter_config.json', 'adapters.safetensors']
    """
    path = Path(path)
    weights = adapter.adapter_weights()
    mx.eval(weights)
    with atomic_directory(path) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(adapter.file_config(), indent=2) + "\n")
        mx.save_safetensors(
            str(tmp / WEIGHTS_FILE),
            weights,
            metadata={"format": "mlx", "fine_tune_type": adapter.method.value},
        )
    return path


def save_mlx_lm_adapter(adapter: BaseAdapter, path: str | Path) -> Path:
    """Write ``adapter`` in mlx-lm's LoRA/DoRA format (AdaLoRA converted to the LoRA it
    is), for ``mlx_lm generate --adapter-path`` and ``mlx_lm fuse``.

    Raises:
        AdapterCreationError: A method mlx-lm cannot apply (prompt, prefix, P-tuning).
    """
    config, weights = adapter.mlx_lm_files()
    mx.eval(weights)
    with atomic_directory(path) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        mx.save_safetensors(str(tmp / WEIGHTS_FILE), weights, metadata={"format": "mlx"})
    return Path(path)


def read_adapter_config(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(method name, config dict)`` from an adapter directory (ours or mlx-lm's)."""
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise AdapterCreationError(
            f"{config_path}: not found; an adapter directory holds "
            f"{CONFIG_FILE} and {WEIGHTS_FILE}."
        )
    try:
        data = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise AdapterCreationError(
            f"{config_path}:{exc.lineno}: invalid JSON ({exc.msg})."
        ) from exc
    if "metapeft" in data:
        return data["metapeft"]["method"], data["metapeft"]["config"]
    method = data.get("fine_tune_type", "lora")
    if method not in {"lora", "dora"}:
        raise AdapterCreationError(
            f"{config_path}: fine_tune_type={method!r} without a "
            "'metapeft' section; only mlx-lm LoRA/DoRA files are "
            "readable without it."
        )
    lora = data.get("lora_parameters", {})
    rank = int(lora.get("rank", 8))
    return method, {
        "rank": rank,
        "alpha": float(lora.get("scale", 20.0)) * rank,
        "dropout": float(lora.get("dropout", 0.0)),
        "target_modules": tuple(lora["keys"]) if lora.get("keys") else "all_linear",
        # mlx-lm's `--num-layers -1` means every block.
        "num_layers": None if data.get("num_layers", -1) in (-1, None) else data["num_layers"],
    }


def load_adapter(model: nn.Module, path: str | Path) -> BaseAdapter:
    """Attach the adapter saved at ``path`` to ``model`` and load its weights.

    Raises:
        AdapterCreationError: Missing files, a config this package cannot read, or
            weights whose names/shapes do not fit the model.
    """
    path = Path(path)
    method, config = read_adapter_config(path)
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise AdapterCreationError(f"{weights_path}: not found.")
    adapter = AdapterFactory.create_adapter(resolve_method(method), model, config)
    adapter.load_adapter_weights(mx.load(str(weights_path)), source=str(weights_path))
    return adapter
