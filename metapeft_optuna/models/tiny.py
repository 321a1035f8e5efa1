"""A tiny randomly initialised llama with a byte-level tokenizer, for fast tests."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .tokenizers import byte_tokenizer

TINY_ARGS = dict(
    model_type="llama",
    hidden_size=64,
    num_hidden_layers=2,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    max_position_embeddings=512,
    tie_word_embeddings=True,
)


def build_tiny(seed: int = 0, *, quantize: bool = False, **overrides):
    """Build the tiny llama and its byte tokenizer.

    Args:
        seed: Seed for the random weights (the same seed gives the same model).
        quantize: Quantize the linear layers to 4 bits (group 32), as in the
            quantized SmolLM2 spec, for tests of quantized code paths.
        **overrides: Fields of ``mlx_lm.models.llama.ModelArgs`` to change.

    Returns:
        ``(model, tokenizer)``.

    Example:
        >>> model, tokenizer = build_tiny()
        >>> len(model.layers)
        2
    """
    from mlx_lm.models.llama import Model, ModelArgs

    tokenizer = byte_tokenizer()
    args = ModelArgs(**{**TINY_ARGS, "vocab_size": len(tokenizer.get_vocab()), **overrides})
    mx.random.seed(seed)  # weights are drawn from the global generator
    model = Model(args)
    if quantize:
        nn.quantize(
            model, group_size=32, bits=4, class_predicate=lambda _, m: isinstance(m, nn.Linear)
        )
    mx.eval(model.parameters())
    return model, tokenizer
