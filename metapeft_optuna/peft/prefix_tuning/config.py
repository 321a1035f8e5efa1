"""``PrefixTuningConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import AdapterConfig, check_choice, check_int

PREFIX_INITS = ("vocab", "random")


@dataclass
class PrefixTuningConfig(AdapterConfig):
    """Prefix tuning (Li & Liang, 2021): trained key/value prefixes in every layer.

    Attributes:
        num_virtual_tokens: Prefix length (0 is allowed: the base model, as a control).
        projection: Produce the prefixes with a reparameterisation MLP while training
            (Li & Liang's stabiliser); the saved adapter holds only the resulting
            prefixes, so the MLP is dropped after training.
        encoder_hidden_size: Hidden width of that MLP.
        init: ``"vocab"``: the model's own keys/values for random vocabulary tokens
            (Li & Liang found real-word activations train best); ``"random"``: small
            Gaussian noise.

    Example:
        >>> PrefixTuningConfig(num_virtual_tokens=10, projection=True).projection
        True
    """

    method_name = "prefix_tuning"
    aliases = {"prefix_projection": "projection"}

    num_virtual_tokens: int = 20
    projection: bool = False
    encoder_hidden_size: int = 256
    init: str = "vocab"

    def validate(self) -> None:
        check_int(self.method_name, "num_virtual_tokens", self.num_virtual_tokens, 0, 4096)
        check_int(self.method_name, "encoder_hidden_size", self.encoder_hidden_size, 1)
        check_choice(self.method_name, "init", self.init, PREFIX_INITS)
