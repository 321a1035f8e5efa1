"""``BaseAdapter``: the one small interface between every PEFT method and the trainer.

An adapter is an ``nn.Module`` that wraps a (frozen) base model, so
``adapter.trainable_parameters()`` is exactly the adapter's parameters and
``nn.value_and_grad(adapter, loss)`` trains them. The trainer only ever calls:

- ``adapter(inputs)``: final hidden states aligned with ``inputs`` (virtual tokens removed);
- ``adapter.logits(hidden)``: the LM head, applied only where the loss needs it;
- ``adapter.extra_loss()``: a regulariser to add to the loss, or None;
- ``adapter.after_step(step, gradients)``: a per-step update outside the gradient
  (AdaLoRA's budget allocation), when ``needs_step_gradients`` is True;
- ``adapter.make_cache()``: a KV cache for decoding.
"""

from __future__ import annotations

from typing import Any, ClassVar

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ..errors import AdapterCreationError
from . import model_access
from .config import AdapterConfig
from .method import PEFTMethod

BASE_PREFIX = "base."


class BaseAdapter(nn.Module):
    """A PEFT method attached to a model. Subclasses fill :attr:`method` and the hooks.

    Args:
        model: The base model; it is frozen, and modified in place only by the
            layer-replacing methods (LoRA, DoRA, AdaLoRA) until :meth:`detach`.
        config: The method's config dataclass.
        tokenizer: Only needed by methods that initialise from text (prompt tuning).

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.peft import AdapterFactory
        >>> model, tokenizer, _ = load_model("tiny")
        >>> config = {"num_virtual_tokens": 2}
        >>> adapter = AdapterFactory.create_adapter("prefix_tuning", model, config)
        >>> tokens = mx.array([tokenizer.encode("hi")])
        >>> adapter.logits(adapter(tokens)).shape
        (1, 2, 259)
    """

    method: ClassVar[PEFTMethod]
    config_class: ClassVar[type[AdapterConfig]]
    needs_step_gradients: ClassVar[bool] = False

    def __init__(self, model: nn.Module, config: AdapterConfig, tokenizer: Any = None):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise AdapterCreationError(
                f"{self.method}: expected a {self.config_class.__name__}, "
                f"got {type(config).__name__}."
            )
        if any(isinstance(m, BaseAdapter) for m in model.modules()):
            raise AdapterCreationError(
                "the model is already wrapped by an adapter; pass the "
                "base model (adapter.base) or call adapter.detach()."
            )
        model.freeze()
        self.base = model
        self.config = config
        self.is_language_model = model_access.is_language_model(model)

    # --- the training-loop hooks -------------------------------------------------------
    def __call__(self, inputs: mx.array, cache: list[Any] | None = None) -> mx.array:
        """Final hidden states ``(batch, length, hidden)`` aligned with ``inputs``."""
        if not self.is_language_model:
            return self.base(inputs)
        return model_access.hidden_states(self.base, inputs, cache)

    @property
    def frozen_blocks(self) -> int:
        """How many leading blocks of the base model hold nothing trainable and are left
        as they are by this adapter's forward: their outputs depend on the input tokens
        alone, so a trainer may compute them once per example (see
        :class:`~metapeft_optuna.training.frozen.FrozenBlocks`). 0 for adapters that
        change the input or every block's attention (prompt, prefix and P-tuning), and
        for models :func:`~metapeft_optuna.peft.model_access.splittable` rejects.
        """
        if type(self).__call__ is not BaseAdapter.__call__ or not model_access.splittable(
            self.base
        ):
            return 0
        for index, block in enumerate(self.base.model.layers):
            if tree_flatten(block.trainable_parameters()):
                return index
        return len(self.base.model.layers)

    def forward_from(self, hidden: mx.array, blocks: int) -> mx.array:
        """Final hidden states from the output of the first ``blocks`` blocks (at most
        :attr:`frozen_blocks`); the same as ``self(inputs)`` for those inputs."""
        return model_access.blocks_from(self.base, hidden, blocks)

    def logits(self, hidden: mx.array) -> mx.array:
        """Vocabulary logits of the given hidden states."""
        return model_access.project_logits(self.base, hidden)

    def extra_loss(self) -> mx.array | None:
        """A term the trainer adds to the loss (inside the gradient); None by default."""
        return None

    def after_step(self, step: int, gradients: dict[str, Any]) -> None:
        """Called after each optimizer step when ``needs_step_gradients`` is True.

        Args:
            step: 1-based number of the optimizer step just taken.
            gradients: That step's gradients, shaped like ``trainable_parameters()``.
        """
        return None

    def make_cache(self, batch_size: int = 1) -> list[Any]:
        """A fresh KV cache for decoding ``batch_size`` sequences with this adapter."""
        from mlx_lm.models.cache import make_prompt_cache

        return make_prompt_cache(self.base)

    # --- bookkeeping -------------------------------------------------------------------
    @property
    def num_trainable_parameters(self) -> int:
        return sum(v.size for _, v in tree_flatten(self.trainable_parameters()))

    def adapter_weights(self) -> dict[str, mx.array]:
        """The trainable arrays by name, named relative to the base model where they live."""
        return {
            name.removeprefix(BASE_PREFIX): value
            for name, value in tree_flatten(self.trainable_parameters())
        }

    def load_adapter_weights(self, weights: dict[str, mx.array], source: str = "weights") -> None:
        """Load arrays saved by :meth:`adapter_weights`; names and shapes must match exactly."""
        expected = {name: v.shape for name, v in self.adapter_weights().items()}
        problems = [f"missing {n}" for n in expected if n not in weights]
        problems += [f"unexpected {n}" for n in weights if n not in expected]
        problems += [
            f"{n}: shape {tuple(w.shape)} != {tuple(expected[n])}"
            for n, w in weights.items()
            if n in expected and w.shape != expected[n]
        ]
        if problems:
            raise AdapterCreationError(
                f"{source} does not fit this {self.method} adapter on this model: "
                + "; ".join(problems[:8])
                + ("; ..." if len(problems) > 8 else "")
            )
        own = {name for name, _ in tree_flatten(self.trainable_parameters())}
        self.load_weights(
            [(n if n in own else BASE_PREFIX + n, w) for n, w in weights.items()], strict=False
        )
        mx.eval(self.parameters())

    def file_config(self) -> dict[str, Any]:
        """What ``adapter_config.json`` holds (mlx-lm's keys plus a ``metapeft`` section)."""
        return {
            "fine_tune_type": self.method.value,
            "metapeft": {
                "method": self.method.value,
                "config": self.config.to_dict(),
                "format_version": 1,
            },
        }

    def mlx_lm_files(self) -> tuple[dict[str, Any], dict[str, mx.array]]:
        """``(adapter_config.json content, weights)`` in mlx-lm's LoRA/DoRA format, which
        ``mlx_lm generate --adapter-path`` and ``mlx_lm fuse`` read.

        Raises:
            AdapterCreationError: The method has no weight updates mlx-lm can apply
                (virtual tokens, key/value prefixes).
        """
        raise AdapterCreationError(
            f"{self.method}: mlx-lm applies LoRA and DoRA weight updates only; generate "
            "with this adapter through metapeft generate (or "
            "metapeft_optuna.training.generate)."
        )

    def fuse(self, dequantize: bool = False) -> nn.Module:
        """Merge the adapter into plain layers and return the base model."""
        raise AdapterCreationError(
            f"{self.method} adds virtual tokens or key/value prefixes, not weight updates, so "
            "there is nothing to merge; keep the adapter and load it with load_adapter."
        )

    def detach(self) -> nn.Module:
        """Remove the adapter and return the base model as it was before attaching."""
        return self.base
