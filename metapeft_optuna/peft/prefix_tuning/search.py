"""Prefix tuning's part of the search space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import CategoricalDistribution

from ..method import PEFTMethod
from ..search import MethodSearch, ParamSpec, register_search
from ..virtual_tokens import NUM_VIRTUAL_TOKENS


def _projection_on(params: Mapping[str, Any]) -> bool:
    return bool(params.get("prefix_projection"))


def _hyperparameters(params: Mapping[str, Any], num_layers: int, init_text: str) -> dict:
    hp = {
        "num_virtual_tokens": int(params["num_virtual_tokens"]),
        "projection": bool(params["prefix_projection"]),
    }
    if hp["projection"]:
        hp["encoder_hidden_size"] = int(params["prefix_hidden"])
    return hp


register_search(
    MethodSearch(
        PEFTMethod.PREFIX_TUNING,
        (
            NUM_VIRTUAL_TOKENS,
            ParamSpec("prefix_projection", CategoricalDistribution((False, True))),
            # The projection's hidden size only exists with the projection on.
            ParamSpec("prefix_hidden", CategoricalDistribution((64, 256)), (), _projection_on),
        ),
        {"learning_rate": 1e-2, "num_virtual_tokens": 8, "prefix_projection": False},
        _hyperparameters,
    )
)
