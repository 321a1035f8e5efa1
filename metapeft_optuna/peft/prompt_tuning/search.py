"""Prompt tuning's part of the search space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import CategoricalDistribution

from ..method import PEFTMethod
from ..search import MethodSearch, ParamSpec, register_search
from ..virtual_tokens import NUM_VIRTUAL_TOKENS


def _hyperparameters(params: Mapping[str, Any], num_layers: int, init_text: str) -> dict:
    hp = {"num_virtual_tokens": int(params["num_virtual_tokens"]), "init": params["prompt_init"]}
    if hp["init"] == "text":
        hp["init_text"] = init_text or "Answer the question."
    return hp


register_search(
    MethodSearch(
        PEFTMethod.PROMPT_TUNING,
        (
            NUM_VIRTUAL_TOKENS,
            ParamSpec("prompt_init", CategoricalDistribution(("random", "vocab", "text"))),
        ),
        {"learning_rate": 3e-2, "num_virtual_tokens": 8, "prompt_init": "vocab"},
        _hyperparameters,
    )
)
