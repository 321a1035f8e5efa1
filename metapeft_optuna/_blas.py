"""Preload an optimized BLAS before ``mlx`` is imported (Linux only).

The Linux CPU wheel of MLX (``mlx-cpu``) links the Netlib reference BLAS, whose
``cblas_sgemm`` is about 30x slower than an optimized one on the same cores.
Loading an optimized BLAS with ``RTLD_GLOBAL`` *before* ``mlx`` loads puts its
``cblas_*`` symbols first in the global lookup scope, so MLX's matrix products bind
to it. Once ``mlx.core`` is loaded the binding is fixed, hence the warning when the
import order is wrong.

Set ``METAPEFT_BLAS=off`` to skip the preload, or ``METAPEFT_BLAS=/path/to/lib.so`` to
choose the library. ``numpy``'s bundled OpenBLAS cannot be used: its symbols carry a
prefix, so MLX never binds to them.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "METAPEFT_BLAS"
logger = logging.getLogger("metapeft_optuna")

_SYSTEM_OPENBLAS = (
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
)


@dataclass(frozen=True)
class BlasStatus:
    """Which BLAS MLX's CPU backend uses in this process.

    Attributes:
        name: ``"mkl"``, ``"openblas"``, ``"custom"``, ``"accelerate"`` (macOS),
            or ``"reference"`` when nothing was preloaded.
        path: The preloaded library, if any.
        reason: Why this BLAS was chosen (or why none was preloaded).

    Example:
        >>> BlasStatus("mkl", "/opt/lib/libmkl_rt.so.2", "preloaded").name
        'mkl'
    """

    name: str
    path: str | None
    reason: str


def _mkl_candidates() -> list[str]:
    # The `mkl` wheel installs its shared libraries into <prefix>/lib, not site-packages.
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix])
    found: list[str] = []
    for prefix in prefixes:
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
    return found


def _candidates() -> list[tuple[str, str]]:
    return [("mkl", p) for p in _mkl_candidates()] + [
        ("openblas", p) for p in _SYSTEM_OPENBLAS if os.path.exists(p)
    ]


def preload_blas() -> BlasStatus:
    """Load the best available BLAS into the global symbol scope.

    Returns:
        The resulting :class:`BlasStatus`; also logged at INFO level.

    Example:
        >>> from metapeft_optuna._blas import preload_blas
        >>> preload_blas().name in {"mkl", "openblas", "custom", "accelerate", "reference"}
        True
    """
    global STATUS
    if STATUS is not None:
        return STATUS
    STATUS = _choose()
    logger.info("BLAS for MLX: %s (%s)", STATUS.name, STATUS.path or STATUS.reason)
    return STATUS


def _choose() -> BlasStatus:
    if platform.system() == "Darwin":
        return BlasStatus("accelerate", None, "macOS MLX uses Accelerate/Metal")
    if platform.system() != "Linux":
        return BlasStatus("reference", None, f"no preload on {platform.system()}")
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting.lower() in {"off", "0", "none", "reference"}:
        return BlasStatus("reference", None, f"disabled by {ENV_VAR}={setting}")
    if "mlx.core" in sys.modules:
        warnings.warn(
            "mlx was imported before metapeft_optuna, so no optimized BLAS could be "
            "preloaded: matrix products run on the reference BLAS (about 30x slower). "
            "Import metapeft_optuna before mlx, or set METAPEFT_BLAS=off to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return BlasStatus("reference", None, "mlx was imported first")
    if setting:
        if not Path(setting).exists():
            raise OSError(
                f"{ENV_VAR}={setting!r} does not exist; point it to a BLAS shared library "
                f"(for example libmkl_rt.so.2 or libopenblas.so.0) or set {ENV_VAR}=off."
            )
        candidates = [("custom", setting)]
    else:
        candidates = _candidates()
    errors = []
    for name, path in candidates:
        try:
            ctypes.CDLL(path, mode=os.RTLD_GLOBAL)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        return BlasStatus(name, path, "preloaded")
    reason = "; ".join(errors) or "no MKL (pip install mkl) or system OpenBLAS found"
    warnings.warn(
        f"No optimized BLAS could be preloaded ({reason}); MLX matrix products run on "
        "the reference BLAS, about 30x slower. Install the `mkl` wheel or Debian's "
        "libopenblas0-pthread.",
        RuntimeWarning,
        stacklevel=3,
    )
    return BlasStatus("reference", None, reason)


STATUS: BlasStatus | None = None
