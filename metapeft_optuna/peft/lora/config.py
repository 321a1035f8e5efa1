"""``LoRAConfig`` and ``DoRAConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import AdapterConfig, check_float, check_int


@dataclass
class LoRAConfig(AdapterConfig):
    """LoRA: ``W x + (alpha / rank) * B A dropout(x)`` on chosen linear layers.

    Attributes:
        rank: Rank of the update (``r``).
        alpha: Scaling numerator; the update is scaled by ``alpha / rank``.
        dropout: Dropout on the adapter's input.
        target_modules: ``"qv"``, ``"attention"``, ``"attention_mlp"`` or a tuple of
            block-relative keys such as ``("self_attn.q_proj", "mlp.up_proj")``.
            For non-transformer models (SimpleClassifier) every linear layer is adapted
            unless a tuple of module paths is given.
        num_layers: Adapt only the last N blocks (None: all).

    Example:
        >>> LoRAConfig(rank=4, alpha=8).scale
        2.0
    """

    method_name = "lora"
    aliases = {
        "r": "rank",
        "lora_alpha": "alpha",
        "lora_dropout": "dropout",
        "keys": "target_modules",
    }

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "qv"
    num_layers: int | None = None

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def validate(self) -> None:
        check_int(self.method_name, "rank", self.rank, 1, 4096)
        check_float(self.method_name, "alpha", self.alpha, 0.0, low_inclusive=False)
        check_float(self.method_name, "dropout", self.dropout, 0.0, 0.9)
        if self.num_layers is not None:
            check_int(self.method_name, "num_layers", self.num_layers, 1)


@dataclass
class DoRAConfig(LoRAConfig):
    """DoRA: LoRA's direction update plus a trained per-output magnitude ``m``.

    Example:
        >>> DoRAConfig(rank=4, alpha=8).scale
        2.0
    """

    method_name = "dora"
