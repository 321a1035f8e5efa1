"""``load_model(spec)``: one entry point for every model the product can fine-tune."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError
from .fast_layers import fast_kernels_enabled, use_fast_layers
from .info import LoadedModel, describe

NAMED_MODELS = {
    "smollm2-135m": "SmolLM2-135M-Instruct, float32 weights dequantized from the shipped GGUF",
    "smollm2-135m-q4": "SmolLM2-135M-Instruct, 4-bit weights as shipped (8-bit embeddings)",
    "tiny": "2-block llama (hidden 64) with random weights and a byte tokenizer, for tests",
    "tiny-q4": "the tiny llama with 4-bit quantized linear layers",
}


def load_model(spec: str | Path, *, seed: int = 0) -> LoadedModel:
    """Load a model, its tokenizer and a :class:`ModelInfo`.

    Args:
        spec: One of ``NAMED_MODELS`` (``"smollm2-135m"``, ``"smollm2-135m-q4"``,
            ``"tiny"``, ``"tiny-q4"``), a local mlx-lm / Hugging Face model directory,
            or a local llama-architecture ``.gguf`` file. Nothing is read from a hub.
        seed: Weight seed of the ``tiny`` models.

    Returns:
        ``LoadedModel(model, tokenizer, info)``; unpack it as a 3-tuple. On the CPU
        backend the SwiGLU MLPs use :mod:`~metapeft_optuna.models.fast_math`
        (``METAPEFT_FAST_KERNELS=0`` keeps mlx-lm's own).

    Raises:
        ModelLoadError: Unknown spec, missing files, or an unsupported format.

    Example:
        >>> model, tokenizer, info = load_model("tiny")
        >>> info.num_layers, info.hidden_size
        (2, 64)
    """
    name = str(spec)
    kind, path = resolve_model(spec)
    if kind == "tiny":
        from .tiny import build_tiny

        model, tokenizer = build_tiny(seed, quantize=name.lower() == "tiny-q4")
    elif kind == "gguf":
        from .gguf import load_gguf

        model, tokenizer = load_gguf(path, dequantize=name.lower() != "smollm2-135m-q4")
    else:
        model, tokenizer = _load_mlx_lm_dir(path)
    if fast_kernels_enabled():
        use_fast_layers(model)
    return LoadedModel(model, tokenizer, describe(model, tokenizer, name))


def resolve_model(spec: str | Path) -> tuple[str, Path | None]:
    """What a model spec names, checked without reading weights: ``("tiny", None)``,
    ``("gguf", path)`` or ``("mlx_lm", directory)``.

    Raises:
        ModelLoadError: An unknown name, a missing path, a folder without
            ``config.json`` or a ``.gguf`` file without GGUF's magic bytes.
    """
    name = str(spec)
    key = name.lower()
    if key in {"tiny", "tiny-q4"}:
        return "tiny", None
    if key in {"smollm2-135m", "smollm2-135m-q4"}:
        from .smollm2 import smollm2_gguf_path

        return "gguf", smollm2_gguf_path()
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelLoadError(f"{path}: not a GGUF file (no GGUF magic bytes).")
        return "gguf", path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path}: no config.json; expected an mlx-lm or Hugging Face model directory."
            )
        return "mlx_lm", path
    raise ModelLoadError(
        f"model {name!r} is neither a known name ({', '.join(NAMED_MODELS)}), "
        "a local model directory, nor a .gguf file."
    )


def _load_mlx_lm_dir(path: Path):
    import mlx_lm

    try:
        return mlx_lm.load(str(path))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path}: mlx_lm.load failed: {exc}") from exc
