"""Write a loaded model as an mlx-lm model directory (for ``mlx_lm`` command-line tools)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ..atomic import atomic_directory


def save_mlx_lm_model(model: nn.Module, tokenizer: Any, path: str | Path) -> Path:
    """Save ``model`` and ``tokenizer`` so that ``mlx_lm.load(path)`` reads them back.

    Quantized layers are saved with their quantization config, as mlx-lm expects.

    Example:
        >>> import tempfile
        >>> from metapeft_optuna.models import load_model
        >>> model, tokenizer, _ = load_model("tiny")
        >>> out = save_mlx_lm_model(model, tokenizer, tempfile.mkdtemp() + "/tiny")
        >>> (out / "config.json").is_file()
        True
    """
    config = {k: v for k, v in asdict(model.args).items() if v is not None}
    quantized = [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    if quantized:
        config["quantization"] = {"group_size": quantized[0].group_size, "bits": quantized[0].bits}
    weights = dict(tree_flatten(model.parameters()))
    with atomic_directory(path) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
        hf_tokenizer = getattr(tokenizer, "_tokenizer", tokenizer)
        hf_tokenizer.save_pretrained(str(tmp))
    return Path(path)
