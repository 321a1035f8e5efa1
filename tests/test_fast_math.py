"""The CPU fast paths: exp, SwiGLU and cross-entropy match MLX's own, values and gradients."""

from __future__ import annotations

from metapeft_optuna.models import load_model
from metapeft_optuna.models.fast_layers import FastSwiGLUMLP, use_fast_layers
from metapeft_optuna.models.fast_math import cross_entropy, fast_exp, logsumexp, swiglu

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten


@pytest.mark.parametrize("shape", [(7,), (3, 1000), (300, 1001)])  # below and above a chunk
def test_fast_exp_relative_error(shape):
    x = mx.random.uniform(-80, 80, shape)
    relative = mx.abs(fast_exp(x) - mx.exp(x)) / mx.exp(x)
    assert float(relative.max()) < 3e-7
    assert float(fast_exp(mx.array(-1000.0))) < 1e-37  # clamped, not garbage
    assert mx.allclose(mx.grad(lambda a: fast_exp(a).sum())(x[:5]), mx.exp(x[:5]), rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 8), (4, 64, 1536)])
def test_swiglu_matches_silu_times_up(shape):
    gate, up, cot = (mx.random.normal(shape) * 4 for _ in range(3))
    reference = lambda g, u: nn.silu(g) * u  # noqa: E731
    assert mx.allclose(swiglu(gate, up), reference(gate, up), atol=1e-5, rtol=1e-5)
    (_, fast), (_, ref) = (mx.vjp(f, [gate, up], [cot]) for f in (swiglu, reference))
    for a, b in zip(fast, ref):
        assert mx.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_cross_entropy_matches_mlx():
    logits = mx.random.normal((6, 3000)) * 5
    targets = mx.random.randint(0, 3000, (6,))
    assert mx.allclose(
        cross_entropy(logits, targets), nn.losses.cross_entropy(logits, targets), atol=1e-4
    )
    assert mx.allclose(logsumexp(logits), mx.logsumexp(logits, axis=-1), atol=1e-4)
    fast = mx.grad(lambda x: cross_entropy(x, targets).sum())(logits)
    ref = mx.grad(lambda x: nn.losses.cross_entropy(x, targets).sum())(logits)
    assert mx.allclose(fast, ref, atol=1e-6)


def test_fast_layers_keep_parameter_names_and_outputs(monkeypatch):
    monkeypatch.setenv("METAPEFT_FAST_KERNELS", "0")
    model, tokenizer, _ = load_model("tiny")
    tokens = mx.array([tokenizer.encode("Bits: 0110\nParity:")])
    expected = model(tokens)
    names = sorted(k for k, _ in tree_flatten(model.parameters()))
    assert use_fast_layers(model) == 2
    assert isinstance(model.layers[0].mlp, FastSwiGLUMLP)
    assert mx.allclose(model(tokens), expected, atol=1e-5)
    assert sorted(k for k, _ in tree_flatten(model.parameters())) == names
