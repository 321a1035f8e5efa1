"""The few ways adapters reach into an mlx-lm language model, in one place.

mlx-lm models expose ``model.model`` (embeddings, blocks, final norm; called as
``model.model(inputs, cache=..., input_embeddings=...)``), ``model.layers`` and either
``lm_head`` or tied embeddings. Working on hidden states lets the trainer project to the
vocabulary only where the loss needs it.
"""

from __future__ import annotations

import inspect

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.base import create_attention_mask

from ..errors import AdapterCreationError

ATTENTION_KEYS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
MLP_KEYS = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
TARGET_PRESETS = {
    "qv": ("self_attn.q_proj", "self_attn.v_proj"),
    "attention": ATTENTION_KEYS,
    "attention_mlp": ATTENTION_KEYS + MLP_KEYS,
}


def is_language_model(model: nn.Module) -> bool:
    """True for mlx-lm style causal LMs (token embeddings, blocks, a backbone)."""
    backbone = model.get("model") if isinstance(model, nn.Module) else None
    return isinstance(backbone, nn.Module) and "embed_tokens" in backbone and "layers" in backbone


def require_language_model(model: nn.Module, method: str, *, embeddings: bool = False) -> None:
    """Raise :class:`AdapterCreationError` if ``method`` cannot attach to ``model``."""
    if not is_language_model(model):
        raise AdapterCreationError(
            f"{method} needs a causal language model with token embeddings and transformer "
            f"blocks (an mlx-lm model); {type(model).__name__} is not one. LoRA/DoRA work on "
            "plain linear models such as SimpleClassifier."
        )
    if embeddings:
        params = inspect.signature(model.model.__call__).parameters
        if "input_embeddings" not in params:
            raise AdapterCreationError(
                f"{method} prepends virtual token embeddings, but "
                f"{type(model.model).__name__}.__call__ takes no input_embeddings."
            )


def embed(model: nn.Module, tokens: mx.array) -> mx.array:
    """Token embeddings ``(batch, length, hidden)`` of an mlx-lm language model."""
    return model.model.embed_tokens(tokens)


def embedding_dim(model: nn.Module) -> int:
    """The model's hidden size, read off one embedded token."""
    return int(embed(model, mx.zeros((1, 1), dtype=mx.int32)).shape[-1])


def hidden_states(
    model: nn.Module, inputs: mx.array | None, cache=None, input_embeddings: mx.array | None = None
) -> mx.array:
    """Final-norm hidden states ``(batch, length, hidden)``."""
    if input_embeddings is None:
        return model.model(inputs, cache=cache)
    return model.model(inputs, cache=cache, input_embeddings=input_embeddings)


def splittable(model: nn.Module) -> bool:
    """Whether :func:`blocks_below` and :func:`blocks_from` reproduce ``model.model``'s
    forward: a llama-style model (mlx-lm's ``LlamaModel``: embeddings, blocks called as
    ``block(h, mask, cache)``, final norm) without sliding-window layers."""
    inner = getattr(model, "model", None)
    return type(inner).__name__ == "LlamaModel" and not any(
        getattr(block, "use_sliding", False) for block in inner.layers
    )


def blocks_below(model: nn.Module, inputs: mx.array, blocks: int) -> mx.array:
    """Hidden states ``(batch, length, hidden)`` after the first ``blocks`` blocks (no
    final norm); ``model`` must be :func:`splittable`."""
    h = embed(model, inputs)
    mask = create_attention_mask(h)
    for block in model.model.layers[:blocks]:
        h = block(h, mask)
    return h


def blocks_from(model: nn.Module, hidden: mx.array, blocks: int) -> mx.array:
    """Final-norm hidden states from those :func:`blocks_below` returned for ``blocks``:
    the rest of the blocks, then the final norm."""
    mask = create_attention_mask(hidden)
    for block in model.model.layers[blocks:]:
        hidden = block(hidden, mask)
    return model.model.norm(hidden)


def project_logits(model: nn.Module, hidden: mx.array) -> mx.array:
    """Vocabulary logits for the given hidden states (the LM head alone)."""
    if "lm_head" in model:
        return model.lm_head(hidden)
    return model.model.embed_tokens.as_linear(hidden)


def attention_geometry(model: nn.Module) -> tuple[int, int, int]:
    """``(num_layers, num_kv_heads, head_dim)`` of the model's attention."""
    attn = model.layers[0].self_attn
    n_kv = getattr(attn, "n_kv_heads", None) or getattr(model.args, "num_key_value_heads", None)
    n_heads = getattr(attn, "n_heads", None) or model.args.num_attention_heads
    head_dim = getattr(attn, "head_dim", None) or model.args.hidden_size // n_heads
    if n_kv is None:
        raise AdapterCreationError(
            f"cannot read the key/value head count of {type(attn).__name__}."
        )
    return len(model.layers), int(n_kv), int(head_dim)


def resolve_target_keys(
    model: nn.Module, targets: str | tuple[str, ...], method: str
) -> tuple[str, ...]:
    """Block-relative module keys for a preset name or an explicit tuple of keys."""
    available = {
        name
        for name, m in model.layers[0].named_modules()
        if isinstance(m, nn.Linear | nn.QuantizedLinear)
    }
    if targets == "all_linear":
        return tuple(sorted(available))
    keys = TARGET_PRESETS.get(targets) if isinstance(targets, str) else tuple(targets)
    if keys is None:
        raise AdapterCreationError(
            f"{method}: target_modules={targets!r}; use one of "
            f"{(*TARGET_PRESETS, 'all_linear')} or a tuple of module "
            "keys."
        )
    missing = [k for k in keys if k not in available]
    if missing:
        raise AdapterCreationError(
            f"{method}: target module(s) {missing} not found in the model's blocks; "
            f"linear layers there are {sorted(available)}."
        )
    return keys


def target_blocks(model: nn.Module, num_layers: int | None, method: str) -> list[nn.Module]:
    """The last ``num_layers`` blocks (all when None)."""
    total = len(model.layers)
    if num_layers is None:
        return list(model.layers)
    if not 1 <= num_layers <= total:
        raise AdapterCreationError(
            f"{method}: num_layers={num_layers} but the model has "
            f"{total} blocks; use 1..{total} or None for all."
        )
    return list(model.layers[total - num_layers :])
