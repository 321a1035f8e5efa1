"""``AdaLoRAConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import AdapterCreationError
from ..config import AdapterConfig, check_float, check_int


@dataclass
class AdaLoRAConfig(AdapterConfig):
    """AdaLoRA (Zhang et al., 2023): SVD-form updates ``P diag(lambda) Q`` whose rank budget
    is reallocated during training by smoothed importance scores.

    The schedule follows HF peft's ``AdaLoraConfig``: the total budget stays at
    ``init_r`` per module for ``tinit`` steps, falls along a cubic curve, and reaches
    ``target_r`` per module (on average) at step ``total_step - tfinal``, after which the
    rank pattern is frozen for the last ``tfinal`` steps.

    Attributes:
        init_r: Initial rank of every adapted module.
        target_r: Average rank per module once the budget has been reallocated.
        alpha: Scaling numerator; the update is scaled by ``alpha / init_r``.
        dropout: Dropout on the adapter's input.
        target_modules: As for :class:`~metapeft_optuna.peft.lora.LoRAConfig`.
        num_layers: Adapt only the last N blocks (None: all).
        tinit: Warm-up steps before any pruning.
        tfinal: Final steps with the rank pattern fixed.
        delta_t: Steps between two budget reallocations.
        beta1: EMA factor of the sensitivity (importance) scores.
        beta2: EMA factor of their uncertainty.
        orth_reg_weight: Weight of the orthogonality regulariser in the loss.
        total_step: Number of training steps (the trainer sets it).

    Example:
        >>> AdaLoRAConfig(init_r=12, target_r=4, tinit=10, tfinal=20, total_step=100).target_r
        4
    """

    method_name = "adalora"
    aliases = {
        "lora_alpha": "alpha",
        "lora_dropout": "dropout",
        "deltaT": "delta_t",
        "keys": "target_modules",
    }

    init_r: int = 12
    target_r: int = 8
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "qv"
    num_layers: int | None = None
    tinit: int = 0
    tfinal: int = 0
    delta_t: int = 1
    beta1: float = 0.85
    beta2: float = 0.85
    orth_reg_weight: float = 0.5
    total_step: int | None = None

    @classmethod
    def for_training(cls, config: dict[str, Any], steps: int) -> dict[str, Any]:
        """The rank schedule spans the whole training: ``total_step`` defaults to it."""
        return {"total_step": steps, **config}

    def validate(self) -> None:
        name = self.method_name
        check_int(name, "init_r", self.init_r, 1, 4096)
        check_int(name, "target_r", self.target_r, 1, self.init_r)
        check_float(name, "alpha", self.alpha, 0.0, low_inclusive=False)
        check_float(name, "dropout", self.dropout, 0.0, 0.9)
        check_int(name, "tinit", self.tinit, 0)
        check_int(name, "tfinal", self.tfinal, 0)
        check_int(name, "delta_t", self.delta_t, 1)
        check_float(name, "beta1", self.beta1, 0.0, 1.0)
        check_float(name, "beta2", self.beta2, 0.0, 1.0)
        check_float(name, "orth_reg_weight", self.orth_reg_weight, 0.0)
        if self.num_layers is not None:
            check_int(name, "num_layers", self.num_layers, 1)
        if self.total_step is not None:
            check_int(name, "total_step", self.total_step, 1)
            if self.tinit >= self.total_step - self.tfinal:
                raise AdapterCreationError(
                    f"{name}: tinit={self.tinit} must be < total_step - tfinal = "
                    f"{self.total_step} - {self.tfinal}; shorten tinit/tfinal or train longer."
                )
