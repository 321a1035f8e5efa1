"""``PromptTuningConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import AdapterCreationError
from ..config import AdapterConfig, check_choice, check_int

PROMPT_INITS = ("random", "vocab", "text")


@dataclass
class PromptTuningConfig(AdapterConfig):
    """Prompt tuning (Lester et al., 2021): trained virtual token embeddings.

    Attributes:
        num_virtual_tokens: How many virtual tokens to prepend (0: no-op control).
        init: ``"random"`` (normal with the embeddings' standard deviation),
            ``"vocab"`` (embeddings of random vocabulary tokens) or ``"text"``
            (embeddings of ``init_text``'s tokens, repeated to fill the prompt).
        init_text: The text for ``init="text"``.
        init_token_ids: Its token ids; filled in from ``init_text`` by the adapter.

    Example:
        >>> PromptTuningConfig(num_virtual_tokens=8, init="text", init_text="Classify:").init
        'text'
    """

    method_name = "prompt_tuning"
    aliases = {"prompt_tuning_init": "init", "prompt_tuning_init_text": "init_text"}

    num_virtual_tokens: int = 20
    init: str = "vocab"
    init_text: str | None = None
    init_token_ids: tuple[int, ...] | None = None

    def validate(self) -> None:
        check_int(self.method_name, "num_virtual_tokens", self.num_virtual_tokens, 0, 4096)
        check_choice(self.method_name, "init", self.init, PROMPT_INITS)
        if self.init == "text" and not (self.init_text or self.init_token_ids):
            raise AdapterCreationError(
                "prompt_tuning: init='text' needs init_text (or init_token_ids)."
            )
