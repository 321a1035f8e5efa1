"""Tokenizers built without a hub: from GGUF metadata, or a byte-level one for tests.

Both are wrapped the way ``mlx_lm.load`` wraps its tokenizers (a Hugging Face fast
tokenizer inside ``mlx_lm.tokenizer_utils.TokenizerWrapper``), so generation utilities
from mlx-lm accept them unchanged.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelLoadError

# ChatML, as SmolLM2 uses it, without the default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Pre-tokenizer regexes by GGUF `tokenizer.ggml.pre` (as llama.cpp names them).
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
    r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _wrap(
    tokenizer_object: Any,
    *,
    bos: str | None,
    eos: str,
    pad: str | None,
    chat_template: str | None,
    eos_ids: list[int] | None = None,
):
    from mlx_lm.tokenizer_utils import TokenizerWrapper
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad or eos,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    if chat_template:
        hf.chat_template = chat_template
    return TokenizerWrapper(hf, eos_token_ids=eos_ids)


def _pre_tokenizer(kind: str):
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind in {"smollm", "starcoder", "refact"}:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if kind in {"llama-bpe", "llama3"}:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_LLAMA3_REGEX), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    return byte_level


def tokenizer_from_gguf_metadata(metadata: dict[str, Any], source: str):
    """Build the tokenizer stored in a GGUF file's metadata (byte-level BPE models).

    Args:
        metadata: The metadata returned by ``mx.load(path, return_metadata=True)``.
        source: The file name, for error messages.

    Raises:
        ModelLoadError: The file stores no tokenizer, or one that is not byte-level BPE.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models

    kind = metadata.get("tokenizer.ggml.model")
    if kind is None:
        raise ModelLoadError(
            f"{source}: the GGUF file stores no tokenizer "
            "(no tokenizer.ggml.model in its metadata)."
        )
    if kind != "gpt2":
        raise ModelLoadError(
            f"{source}: tokenizer model {kind!r} is not supported (only byte-level BPE, "
            "'gpt2'). Convert the model with `mlx_lm.convert` and pass its directory."
        )
    tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    token_types = _as_list(metadata.get("tokenizer.ggml.token_type"))
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tokenizer.pre_tokenizer = _pre_tokenizer(str(metadata.get("tokenizer.ggml.pre", "gpt2")))
    tokenizer.decoder = decoders.ByteLevel()
    # token_type 3 marks control tokens (<|im_start|> ...): they must never be split.
    specials = [t for t, kind_id in zip(tokens, token_types) if kind_id == 3]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])

    def token(key: str) -> str | None:
        value = metadata.get(f"tokenizer.ggml.{key}_token_id")
        return None if value is None else tokens[int(_scalar(value))]

    eos = token("eos")
    if eos is None:
        raise ModelLoadError(f"{source}: the GGUF tokenizer has no eos_token_id.")
    return _wrap(
        tokenizer,
        bos=token("bos"),
        eos=eos,
        pad=token("padding"),
        chat_template=metadata.get("tokenizer.chat_template"),
    )


def byte_tokenizer():
    """A byte-level tokenizer: 256 byte tokens plus the three ChatML special tokens.

    Example:
        >>> tok = byte_tokenizer()
        >>> tok.decode(tok.encode("héllo"))
        'héllo'
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(sorted(alphabet))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in CHATML_SPECIALS]
    )
    return _wrap(
        tokenizer, bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=CHATML_TEMPLATE
    )


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value.tolist() if hasattr(value, "tolist") else list(value)
