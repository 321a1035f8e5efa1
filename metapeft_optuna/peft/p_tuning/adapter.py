"""P-tuning: virtual tokens from a trained prompt encoder, prepended to the input."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ..method import PEFTMethod
from ..registry import register_adapter
from ..virtual_tokens import VirtualTokenAdapter, vocabulary_embeddings
from .config import PTuningConfig
from .encoder import PromptEncoder


@register_adapter
class PTuningAdapter(VirtualTokenAdapter):
    """P-tuning: ``encoder(embedding)`` gives the virtual tokens.

    The encoder's input embeddings start as random vocabulary embeddings (instead of
    HF's unit-variance noise) so the first virtual tokens sit on the model's scale.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> adapter = PTuningAdapter(model, PTuningConfig(num_virtual_tokens=10,
        ...                                               encoder_hidden_size=32))
        >>> adapter.num_trainable_parameters
        5888
    """

    method = PEFTMethod.P_TUNING
    config_class = PTuningConfig

    def __init__(self, model: nn.Module, config: PTuningConfig, tokenizer: Any = None):
        super().__init__(model, config, tokenizer)
        self.encoder = PromptEncoder(
            config.num_virtual_tokens,
            self.hidden_size,
            config.encoder_type,
            config.encoder_hidden_size,
            config.encoder_num_layers,
            config.encoder_dropout,
            vocabulary_embeddings(model, config.num_virtual_tokens),
        )

    def virtual_tokens(self) -> mx.array:
        return self.encoder()
