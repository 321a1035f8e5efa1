"""Generate text with a trained adapter of any PEFT method (``metapeft generate``).

mlx-lm's own ``mlx_lm generate --adapter-path`` applies LoRA and DoRA weight updates (and
AdaLoRA once exported as the LoRA it is, :func:`~metapeft_optuna.peft.save_mlx_lm_adapter`);
prompt tuning, prefix tuning and P-tuning change what the model reads, so they generate
here, through the same adapter forward pass and greedy decoding as trial evaluation.
"""

from __future__ import annotations

from pathlib import Path

from ..models import LoadedModel, load_model
from ..peft import load_adapter
from .baseline import UntunedModel
from .batching import eos_id
from .evaluation import greedy_decode


def generate(
    model: str | Path | LoadedModel,
    prompt: str,
    adapter_path: str | Path | None = None,
    *,
    max_tokens: int = 64,
) -> str:
    """The greedy continuation of ``prompt``.

    Args:
        model: A model spec (:func:`~metapeft_optuna.models.load_model`: a named model,
            an mlx-lm model directory, a ``.gguf`` file) or a loaded model, which the
            adapter is attached to (load a fresh one per adapter).
        prompt: Text in the format the adapter was trained on (for a built-in task, its
            prompt, e.g. ``"Bits: 0110\\nParity:"``); tokenised without special tokens, as
            in training.
        adapter_path: An adapter directory written by a trial, ``metapeft export`` or
            ``mlx_lm lora`` (None: the untuned model).
        max_tokens: Most tokens generated; generation also stops at end of sequence.

    Returns:
        The generated text (the prompt not included).

    Raises:
        AdapterCreationError: An adapter directory that cannot be read or does not fit
            the model.

    Example:
        >>> import tempfile
        >>> from metapeft_optuna.peft import AdapterFactory, save_adapter
        >>> loaded = load_model("tiny")
        >>> path = save_adapter(AdapterFactory.create_adapter("prompt_tuning", loaded.model,
        ...                     {"num_virtual_tokens": 4}), tempfile.mkdtemp() + "/a")
        >>> isinstance(generate("tiny", "Bits: 0110\\nParity:", path, max_tokens=3), str)
        True
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    adapter = (
        load_adapter(loaded.model, adapter_path)
        if adapter_path is not None
        else UntunedModel(loaded.model)
    )
    adapter.eval()
    tokenizer = loaded.tokenizer
    tokens = tokenizer.encode(prompt, add_special_tokens=False)
    stop = set(getattr(tokenizer, "eos_token_ids", None) or [eos_id(tokenizer)])
    generated = greedy_decode(adapter, [tokens], max_tokens, stop)[0]
    return tokenizer.decode(generated)
