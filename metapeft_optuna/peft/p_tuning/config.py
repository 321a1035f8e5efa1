"""``PTuningConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import AdapterConfig, check_choice, check_float, check_int

ENCODERS = ("mlp", "lstm")


@dataclass
class PTuningConfig(AdapterConfig):
    """P-tuning (Liu et al., 2021): virtual tokens produced by a prompt encoder.

    Attributes:
        num_virtual_tokens: How many virtual tokens to prepend.
        encoder_type: ``"mlp"`` (Linear-ReLU-Linear-ReLU-Linear) or ``"lstm"``
            (bidirectional LSTM followed by a two-layer MLP head), as in HF peft.
        encoder_hidden_size: Hidden width of the encoder.
        encoder_num_layers: LSTM layers (ignored by the MLP encoder).
        encoder_dropout: Dropout inside the encoder.

    Example:
        >>> PTuningConfig(encoder_type="lstm", encoder_hidden_size=64).encoder_type
        'lstm'
    """

    method_name = "p_tuning"
    aliases = {"encoder_reparameterization_type": "encoder_type"}

    num_virtual_tokens: int = 20
    encoder_type: str = "mlp"
    encoder_hidden_size: int = 128
    encoder_num_layers: int = 2
    encoder_dropout: float = 0.0

    def validate(self) -> None:
        check_int(self.method_name, "num_virtual_tokens", self.num_virtual_tokens, 1, 4096)
        check_choice(self.method_name, "encoder_type", self.encoder_type, ENCODERS)
        check_int(self.method_name, "encoder_hidden_size", self.encoder_hidden_size, 1)
        check_int(self.method_name, "encoder_num_layers", self.encoder_num_layers, 1, 8)
        check_float(self.method_name, "encoder_dropout", self.encoder_dropout, 0.0, 0.9)
