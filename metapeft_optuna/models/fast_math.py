"""Transcendental functions that are fast on MLX's CPU backend.

MLX's CPU ``exp`` (and with it ``sigmoid``, ``silu``, ``softmax``) is scalar code: about
60M elements/s here, five times slower than numpy. In a SmolLM2 LoRA step the SwiGLU
activations and the vocabulary softmax then cost about as much as the matrix products.

:func:`fast_exp` computes ``exp(x) = 2^n * 2^f`` with ``f`` in [-0.5, 0.5] and ``2^f`` a
degree-7 polynomial in Estrin form: only multiplies, adds, min/max and a bit-cast, which
``mx.compile`` fuses into vectorised kernels. Three details keep the kernels fast:

- rounding uses the add/subtract-``1.5 * 2^23`` trick, because ``mx.floor`` inside a
  fused kernel blocks vectorisation;
- Estrin's scheme keeps the expression shallow: MLX fuses at most ~11 operations deep,
  and a Horner chain would be split into several kernels with materialised
  intermediates;
- inputs are processed in chunks of 128K elements so that what is materialised between
  kernels stays in cache.

Relative error is below 2.5e-7 (float32 rounding is 6e-8). The functions built on it
have hand-written VJPs, since the bit-cast that forms ``2^n`` has no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mlx.core as mx

_LN2 = math.log(2.0)
_C = [_LN2**k / math.factorial(k) for k in range(8)]  # Taylor series of 2^f
_ROUND = 12582912.0  # 1.5 * 2^23: (y + _ROUND) - _ROUND rounds y to an integer
_CHUNK = 1 << 17


def _fast_exp(x: mx.array) -> mx.array:
    x = mx.minimum(mx.maximum(x, -87.0), 88.0)  # float32 exp range, no infinities
    y = x * (1.0 / _LN2)
    n = (y + _ROUND) - _ROUND
    f = y - n
    f2 = f * f
    p = (
        (_C[0] + _C[1] * f)
        + f2 * (_C[2] + _C[3] * f)
        + (f2 * f2) * ((_C[4] + _C[5] * f) + f2 * (_C[6] + _C[7] * f))
    )
    two_to_n = mx.left_shift(n.astype(mx.int32) + 127, 23).view(mx.float32)
    return p * two_to_n


def _sigmoid(x: mx.array) -> mx.array:
    return 1.0 / (1.0 + _fast_exp(-x))


@mx.compile
def _exp_kernel(x: mx.array) -> mx.array:
    return _fast_exp(x)


@mx.compile
def _swiglu_forward(gate: mx.array, up: mx.array) -> mx.array:
    return gate * _sigmoid(gate) * up


@mx.compile
def _swiglu_backward(gate: mx.array, up: mx.array, cotangent: mx.array):
    s = _sigmoid(gate)
    silu = gate * s
    return cotangent * up * (s + silu * (1.0 - s)), cotangent * silu


def _chunked(kernel: Callable, *arrays: mx.array):
    """Apply an element-wise ``kernel`` to same-shape ``arrays`` in cache-sized chunks."""
    shape = arrays[0].shape
    if arrays[0].size <= _CHUNK:
        return kernel(*arrays)
    flat = [a.reshape(-1) for a in arrays]
    parts = [kernel(*(f[i : i + _CHUNK] for f in flat)) for i in range(0, flat[0].size, _CHUNK)]
    if isinstance(parts[0], tuple):
        return tuple(mx.concatenate(column).reshape(shape) for column in zip(*parts))
    return mx.concatenate(parts).reshape(shape)


@mx.custom_function
def fast_exp(x: mx.array) -> mx.array:
    """``exp(x)`` for float32 ``x``, to 2.5e-7 relative error, differentiable.

    Example:
        >>> round(float(fast_exp(mx.array(1.0))), 5)
        2.71828
    """
    return _chunked(_exp_kernel, x)


# A custom function of one argument receives it (not a tuple) as ``primals``.
@fast_exp.vjp
def _fast_exp_vjp(x, cotangent, output):
    return cotangent * output


@mx.custom_function
def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """``silu(gate) * up`` (the llama MLP activation) with :func:`fast_exp`.

    Example:
        >>> import mlx.nn as nn
        >>> g, u = mx.array([0.5, -2.0]), mx.array([1.0, 3.0])
        >>> bool(mx.allclose(swiglu(g, u), nn.silu(g) * u))
        True
    """
    return _chunked(_swiglu_forward, gate, up)


@swiglu.vjp
def _swiglu_vjp(primals, cotangent, output):
    gate, up = primals
    return _chunked(_swiglu_backward, gate, up, cotangent)


@mx.custom_function
def logsumexp(x: mx.array) -> mx.array:
    """``log(sum(exp(x)))`` over the last axis with :func:`fast_exp`."""
    peak = mx.max(x, axis=-1, keepdims=True)
    # Broadcasting inside a compiled kernel makes MLX emit a slow strided loop, so the
    # subtraction runs on its own and the kernel sees same-shape inputs.
    return mx.log(mx.sum(_chunked(_exp_kernel, x - peak), axis=-1)) + peak[..., 0]


@logsumexp.vjp
def _logsumexp_vjp(x, cotangent, output):
    return _chunked(_exp_kernel, x - output[..., None]) * cotangent[..., None]


def cross_entropy(logits: mx.array, targets: mx.array) -> mx.array:
    """Per-position cross-entropy (``nn.losses.cross_entropy`` without reduction).

    Example:
        >>> import mlx.nn as nn
        >>> logits, targets = mx.random.normal((3, 10)), mx.array([1, 2, 3])
        >>> bool(mx.allclose(cross_entropy(logits, targets),
        ...                  nn.losses.cross_entropy(logits, targets), atol=1e-5))
        True
    """
    picked = mx.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return logsumexp(logits) - picked
