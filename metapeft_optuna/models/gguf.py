"""Load a llama-architecture GGUF file into mlx-lm's llama model, with its tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ..errors import ModelLoadError
from .tokenizers import tokenizer_from_gguf_metadata

_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def _mlx_name(gguf_name: str) -> str:
    stem, leaf = gguf_name.rsplit(".", 1)
    if stem.startswith("blk."):
        _, index, part = stem.split(".", 2)
        if part not in _BLOCK_NAMES:
            raise KeyError(part)
        return f"model.layers.{index}.{_BLOCK_NAMES[part]}.{leaf}"
    return f"{_TOP_NAMES[stem]}.{leaf}"


def _meta(metadata: dict[str, Any], key: str, default: Any = None) -> Any:
    value = metadata.get(key, default)
    return value.item() if hasattr(value, "item") else value


def model_args_from_gguf(metadata: dict[str, Any], has_output: bool, source: str):
    """mlx-lm ``ModelArgs`` for the llama model described by GGUF metadata."""
    from mlx_lm.models.llama import ModelArgs

    arch = _meta(metadata, "general.architecture")
    if arch != "llama":
        raise ModelLoadError(
            f"{source}: GGUF architecture {arch!r} is not supported (only 'llama'); "
            "convert the model with `mlx_lm.convert` and pass its directory instead."
        )
    try:
        heads = int(_meta(metadata, "llama.attention.head_count"))
        return ModelArgs(
            model_type="llama",
            hidden_size=int(_meta(metadata, "llama.embedding_length")),
            num_hidden_layers=int(_meta(metadata, "llama.block_count")),
            intermediate_size=int(_meta(metadata, "llama.feed_forward_length")),
            num_attention_heads=heads,
            num_key_value_heads=int(_meta(metadata, "llama.attention.head_count_kv", heads)),
            rms_norm_eps=float(_meta(metadata, "llama.attention.layer_norm_rms_epsilon")),
            vocab_size=len(metadata["tokenizer.ggml.tokens"]),
            rope_theta=float(_meta(metadata, "llama.rope.freq_base", 10000.0)),
            # GGUF stores q/k rows in the interleaved rotary layout.
            rope_traditional=True,
            max_position_embeddings=_meta(metadata, "llama.context_length"),
            tie_word_embeddings=not has_output,
        )
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{source}: GGUF metadata lacks {exc}; is it a complete llama model file?"
        ) from exc


def load_gguf(path: str | Path, *, dequantize: bool = True):
    """Load a llama GGUF file.

    Args:
        path: The ``.gguf`` file.
        dequantize: Convert quantized weights to float32 (faster on CPU, 4x the
            memory); ``False`` keeps them as MLX quantized layers.

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ModelLoadError: The file is missing, unreadable, or not a supported llama model.
    """
    from mlx_lm.models.llama import Model

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: GGUF file not found.")
    try:
        weights, metadata = mx.load(str(path), return_metadata=True)
    except Exception as exc:  # mlx raises bare RuntimeError/ValueError for bad files
        raise ModelLoadError(
            f"{path}: could not read GGUF ({exc}). MLX reads F32, F16, Q4_0, Q4_1 and Q8_0 tensors."
        ) from exc
    tokenizer = tokenizer_from_gguf_metadata(metadata, str(path))
    try:
        renamed = {_mlx_name(k): v for k, v in weights.items()}
    except KeyError as exc:
        raise ModelLoadError(f"{path}: unexpected tensor {exc} for a llama model.") from exc
    args = model_args_from_gguf(metadata, "lm_head.weight" in renamed, str(path))
    model = Model(args)
    quantized = {name.rsplit(".", 1)[0] for name in renamed if name.endswith(".scales")}

    def quantization(module_path: str, module: nn.Module) -> dict[str, int] | bool:
        if module_path not in quantized:
            return False
        weight, scales = renamed[f"{module_path}.weight"], renamed[f"{module_path}.scales"]
        group_size = 32  # GGUF blocks hold 32 values
        bits = 32 * weight.shape[-1] // (scales.shape[-1] * group_size)
        return {"group_size": group_size, "bits": bits}

    nn.quantize(model, class_predicate=quantization)
    model.load_weights(list(renamed.items()), strict=True)
    if dequantize:
        model = dequantize_model(model)
    mx.eval(model.parameters())
    return model, tokenizer


def dequantize_model(model: nn.Module) -> nn.Module:
    """Replace every quantized linear/embedding layer with a float32 one, in place."""
    replacements = []
    for name, module in model.named_modules():
        if isinstance(module, nn.QuantizedLinear | nn.QuantizedEmbedding):
            weight = mx.dequantize(
                module.weight,
                module.scales,
                module.get("biases"),
                group_size=module.group_size,
                bits=module.bits,
                mode=module.mode,
            ).astype(mx.float32)
            if isinstance(module, nn.QuantizedEmbedding):
                layer = nn.Embedding(*weight.shape)
            else:
                layer = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in module)
                if "bias" in module:
                    layer.bias = module.bias
            layer.weight = weight
            replacements.append((name, layer))
    if replacements:
        from mlx.utils import tree_unflatten

        model.update_modules(tree_unflatten(replacements))
    return model
