"""LoRA's and DoRA's part of the search space, and the LoRA-family parameters that
AdaLoRA shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution

from ..method import PEFTMethod
from ..search import MethodSearch, ParamSpec, register_search

# Shared by LoRA, DoRA and AdaLoRA: how strongly and where the update is applied.
FAMILY_PARAMS = (
    ParamSpec("lora_alpha", FloatDistribution(1.0, 64.0, log=True)),
    ParamSpec("lora_dropout", FloatDistribution(0.0, 0.2)),
    ParamSpec("lora_targets", CategoricalDistribution(("qv", "attention", "attention_mlp"))),
    ParamSpec("lora_layer_fraction", CategoricalDistribution((0.25, 0.5, 1.0))),
)
FAMILY_DEFAULTS = {
    "learning_rate": 2e-3,
    "lora_alpha": 16.0,
    "lora_dropout": 0.05,
    "lora_targets": "qv",
    "lora_layer_fraction": 1.0,
}


def family_hyperparameters(params: Mapping[str, Any], num_layers: int) -> dict[str, Any]:
    """The LoRA-family adapter keys: ``alpha``, ``dropout``, ``target_modules`` and
    ``num_layers`` (the fraction of the model's ``num_layers`` blocks, at least one)."""
    return {
        "alpha": float(params["lora_alpha"]),
        "dropout": float(params["lora_dropout"]),
        "target_modules": params["lora_targets"],
        "num_layers": max(1, round(float(params["lora_layer_fraction"]) * num_layers)),
    }


def _hyperparameters(params: Mapping[str, Any], num_layers: int, init_text: str) -> dict:
    return {**family_hyperparameters(params, num_layers), "rank": int(params["lora_rank"])}


_RANK = ParamSpec("lora_rank", CategoricalDistribution((2, 4, 8, 16, 32)))
for _method in (PEFTMethod.LORA, PEFTMethod.DORA):
    register_search(
        MethodSearch(
            _method, (_RANK, *FAMILY_PARAMS), {**FAMILY_DEFAULTS, "lora_rank": 8}, _hyperparameters
        )
    )
