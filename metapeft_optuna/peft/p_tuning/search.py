"""P-tuning's part of the search space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import CategoricalDistribution

from ..method import PEFTMethod
from ..search import MethodSearch, ParamSpec, register_search
from ..virtual_tokens import NUM_VIRTUAL_TOKENS


def _hyperparameters(params: Mapping[str, Any], num_layers: int, init_text: str) -> dict:
    return {
        "num_virtual_tokens": int(params["num_virtual_tokens"]),
        "encoder_type": params["ptuning_encoder"],
        "encoder_hidden_size": int(params["ptuning_hidden"]),
    }


register_search(
    MethodSearch(
        PEFTMethod.P_TUNING,
        (
            NUM_VIRTUAL_TOKENS,
            ParamSpec("ptuning_encoder", CategoricalDistribution(("mlp", "lstm"))),
            ParamSpec("ptuning_hidden", CategoricalDistribution((64, 128, 256))),
        ),
        {
            "learning_rate": 1e-2,
            "num_virtual_tokens": 8,
            "ptuning_encoder": "mlp",
            "ptuning_hidden": 128,
        },
        _hyperparameters,
    )
)
