"""Prompt tuning: trained virtual token embeddings prepended to the input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from ...errors import AdapterCreationError
from ..method import PEFTMethod
from ..registry import register_adapter
from ..virtual_tokens import VirtualTokenAdapter, embedding_std, vocabulary_embeddings
from .config import PromptTuningConfig


@register_adapter
class PromptTuningAdapter(VirtualTokenAdapter):
    """Prompt tuning: ``num_virtual_tokens x hidden`` trainable embeddings.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, tokenizer, _ = load_model("tiny")
        >>> adapter = PromptTuningAdapter(model, PromptTuningConfig(num_virtual_tokens=10))
        >>> adapter.num_trainable_parameters
        640
    """

    method = PEFTMethod.PROMPT_TUNING
    config_class = PromptTuningConfig

    def __init__(self, model: nn.Module, config: PromptTuningConfig, tokenizer: Any = None):
        super().__init__(model, config, tokenizer)
        count = config.num_virtual_tokens
        if config.init == "text":
            ids = list(config.init_token_ids or self._tokenize(config.init_text, tokenizer))
            ids = (ids * (count // len(ids) + 1))[:count]
            self.config = replace(config, init_token_ids=tuple(ids))
            self.prompt_embeddings = vocabulary_embeddings(model, count, ids)
        elif config.init == "vocab":
            self.prompt_embeddings = vocabulary_embeddings(model, count)
        else:
            self.prompt_embeddings = mx.random.normal((count, self.hidden_size)) * embedding_std(
                model
            )

    @staticmethod
    def _tokenize(text: str | None, tokenizer: Any) -> list[int]:
        if tokenizer is None:
            raise AdapterCreationError(
                "prompt_tuning: init='text' needs the tokenizer "
                "(AdapterFactory.create_adapter(..., tokenizer=...))."
            )
        ids = tokenizer.encode(text or "", add_special_tokens=False)
        if not ids:
            raise AdapterCreationError(f"prompt_tuning: init_text={text!r} has no tokens.")
        return ids

    def virtual_tokens(self) -> mx.array:
        return self.prompt_embeddings
