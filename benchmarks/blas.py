"""fp32 1024x1024 matmul x10 in MLX, with and without the optimized-BLAS preload.

Each variant runs in its own process, because the BLAS binding is fixed when mlx
loads. Prints both times and their ratio.

    python benchmarks/blas.py [--size 1024] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, sys, time
import metapeft_optuna
import mlx.core as mx
n, repeats = int(sys.argv[1]), int(sys.argv[2])
a = mx.random.normal((n, n)); mx.eval(a @ a)  # warm up (library init, thread pools)
start = time.perf_counter()
for _ in range(repeats):
    mx.eval(a @ a)
print(json.dumps({"seconds": time.perf_counter() - start, "blas": metapeft_optuna.BLAS.name}))
"""


def measure(size: int, repeats: int, preload: bool) -> dict:
    env = dict(os.environ)
    if preload:
        env.pop("METAPEFT_BLAS", None)
    else:
        env["METAPEFT_BLAS"] = "off"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(size), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    reference = measure(args.size, args.repeats, preload=False)
    optimized = measure(args.size, args.repeats, preload=True)
    label = f"fp32 {args.size}x{args.size} matmul x{args.repeats}"
    print(f"{label}, reference BLAS ({reference['blas']}): {reference['seconds']:.3f} s")
    print(f"{label}, preloaded BLAS ({optimized['blas']}): {optimized['seconds']:.3f} s")
    print(f"speed-up: {reference['seconds'] / optimized['seconds']:.1f}x")


if __name__ == "__main__":
    main()
