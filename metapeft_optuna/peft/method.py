"""``PEFTMethod``: the string enum of every parameter-efficient fine-tuning method."""

from __future__ import annotations

from enum import StrEnum


class PEFTMethod(StrEnum):
    """The PEFT methods this package implements for MLX models.

    Example:
        >>> PEFTMethod("lora") is PEFTMethod.LORA
        True
        >>> [m.value for m in PEFTMethod]
        ['lora', 'dora', 'adalora', 'prompt_tuning', 'prefix_tuning', 'p_tuning']
    """

    LORA = "lora"
    DORA = "dora"
    ADALORA = "adalora"
    PROMPT_TUNING = "prompt_tuning"
    PREFIX_TUNING = "prefix_tuning"
    P_TUNING = "p_tuning"
