"""AdaLoRA's part of the search space: the LoRA family's parameters plus its rank budget
and schedule (as fractions of the training steps, so they fit any step count)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution

from ..lora.search import FAMILY_DEFAULTS, FAMILY_PARAMS, family_hyperparameters
from ..method import PEFTMethod
from ..search import MethodSearch, ParamSpec, register_search


def _hyperparameters(params: Mapping[str, Any], num_layers: int, init_text: str) -> dict:
    init_r, steps = int(params["adalora_init_r"]), int(params["steps"])
    return {
        **family_hyperparameters(params, num_layers),
        "init_r": init_r,
        "target_r": max(1, round(init_r * params["adalora_target_fraction"])),
        "orth_reg_weight": float(params["adalora_orth_reg_weight"]),
        "tinit": int(params["adalora_tinit_fraction"] * steps),
        "tfinal": int(params["adalora_tfinal_fraction"] * steps),
    }


register_search(
    MethodSearch(
        PEFTMethod.ADALORA,
        (
            *FAMILY_PARAMS,
            ParamSpec("adalora_init_r", CategoricalDistribution((4, 8, 12, 16))),
            ParamSpec("adalora_target_fraction", FloatDistribution(0.25, 1.0)),
            ParamSpec("adalora_orth_reg_weight", FloatDistribution(0.01, 1.0, log=True)),
            ParamSpec("adalora_tinit_fraction", FloatDistribution(0.0, 0.3)),
            ParamSpec("adalora_tfinal_fraction", FloatDistribution(0.0, 0.3)),
        ),
        {
            **FAMILY_DEFAULTS,
            "adalora_init_r": 12,
            "adalora_target_fraction": 0.67,
            "adalora_orth_reg_weight": 0.1,
            "adalora_tinit_fraction": 0.1,
            "adalora_tfinal_fraction": 0.2,
        },
        _hyperparameters,
    )
)
