"""How much of a trial's training time its first steps pay beyond the steady step time.

The first steps of a fine-tune also compile the training step (``mx.compile`` traces it
for the trial's shapes), build the frozen-block cache and allocate buffers; keeping
compiled steps across trials of the same shapes could save at most this overhead. Read
from the recorded learning curves, no fine-tune runs: the steady rate is the time
between the second and third curve points per step, and the overhead is the first
point's time beyond that rate. Reported overall, by PEFT method and by trial length,
as a share of the trials' training time (sums, so long trials weigh more) and as the
median per trial. Run:

    python benchmarks/first_step_overhead.py [--experience studies/meta_dataset_v2.jsonl]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

import metapeft_optuna  # noqa: F401  (BLAS before numpy users)
from metapeft_optuna.meta import ExperienceBuffer

import numpy as np

LENGTHS = (
    (30, "10-30 steps (v1's space, the product's default until 2026-12-07)"),
    (80, "31-80 steps"),
    (math.inf, "over 80 steps"),
)


def overhead_seconds(curve) -> float | None:
    """The first curve point's training seconds beyond the steady rate, or None when the
    curve has fewer than three timed points."""
    timed = [p for p in curve if p.get("train_seconds") is not None and p.get("step")]
    if len(timed) < 3:
        return None
    first, second, third = timed[:3]
    rate = (third["train_seconds"] - second["train_seconds"]) / (third["step"] - second["step"])
    return first["train_seconds"] - rate * first["step"]


def length_group(steps: int) -> str:
    return next(label for top, label in LENGTHS if steps <= top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experience", nargs="+", default=["studies/meta_dataset_v2.jsonl"])
    args = parser.parse_args()
    groups = defaultdict(list)  # group -> [(overhead s, training s)]
    for e in ExperienceBuffer.from_storages(args.experience).complete():
        seconds = e.performance_metrics.get("train_seconds")
        overhead = overhead_seconds(e.learning_curve or [])
        if overhead is None or not seconds:
            continue
        for group in ("all", e.method_used.value, length_group(int(e.hyperparameters["steps"]))):
            groups[group].append((overhead, seconds))
    if not groups:
        raise SystemExit(f"{args.experience}: no trial has a learning curve of 3 timed points")
    print("| trials | n | overhead, median (s) | share of training time | median share |")
    print("|---|---:|---:|---:|---:|")
    lengths = [label for _, label in LENGTHS if label in groups]
    methods = sorted(set(groups) - {"all", *lengths})
    for group in ["all", *methods, *lengths]:
        pairs = groups[group]
        overhead, seconds = np.array(pairs).T
        print(
            f"| {group} | {len(pairs)} | {np.median(overhead):.1f} | "
            f"{overhead.sum() / seconds.sum():.1%} | {np.median(overhead / seconds):.1%} |"
        )


if __name__ == "__main__":
    main()
