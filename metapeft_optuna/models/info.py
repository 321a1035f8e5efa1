"""``ModelInfo``: the few numbers about a model that become meta-features."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import mlx.nn as nn
from mlx.utils import tree_flatten


@dataclass(frozen=True)
class ModelInfo:
    """A small description of a loaded model.

    Attributes:
        name: The spec it was loaded from (``"smollm2-135m"``, a path, ``"tiny"``).
        num_parameters: Parameter count, counting quantized weights at full size.
        num_layers: Number of transformer blocks.
        hidden_size: Width of the residual stream.
        vocab_size: Tokenizer/embedding vocabulary size.
        quantization_bits: Bits of the block weights (None when unquantized).
        context_length: Longest sequence the model was trained for, if known.

    Example:
        >>> ModelInfo("tiny", 90624, 2, 64, 259).to_dict()["num_layers"]
        2
    """

    name: str
    num_parameters: int
    num_layers: int
    hidden_size: int
    vocab_size: int
    quantization_bits: int | None = None
    context_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``model, tokenizer, info``.

    Example:
        >>> model, tokenizer, info = LoadedModel("model", "tokenizer", "info")
        >>> info
        'info'
    """

    model: nn.Module
    tokenizer: Any
    info: ModelInfo


def count_parameters(model: nn.Module) -> int:
    """Parameter count with quantized weights counted at their unpacked size."""
    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    for _, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear | nn.QuantizedEmbedding):
            out_dims, packed = module.weight.shape
            stored = module.weight.size + module.scales.size
            stored += module.biases.size if "biases" in module else 0
            total += out_dims * packed * 32 // module.bits - stored
    return total


def describe(model: nn.Module, tokenizer: Any, name: str) -> ModelInfo:
    """Build the :class:`ModelInfo` of an mlx-lm style model (``model.args`` present)."""
    args = getattr(model, "args", None)
    hidden = getattr(args, "hidden_size", None) or getattr(args, "dim", 0)
    bits = None
    for _, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear):
            bits = module.bits
            break
    return ModelInfo(
        name=name,
        num_parameters=count_parameters(model),
        num_layers=len(model.layers),
        hidden_size=int(hidden),
        vocab_size=int(getattr(args, "vocab_size", 0) or len(tokenizer.get_vocab())),
        quantization_bits=bits,
        context_length=getattr(args, "max_position_embeddings", None),
    )
