"""Reusing the frozen lower blocks: one LoRA trial's training time with and without it.

LoRA on the last blocks only (``lora_layer_fraction`` 0.25, 0.5 and 1.0 of SmolLM2-135M's
30 blocks) leaves the blocks below frozen and unchanged, so the trainer computes them
once per example per trial (``metapeft_optuna/training/frozen.py``). Baseline, measured
in the same run on the same trials: the same fine-tune recomputing them every step
(``BaseAdapter.frozen_blocks`` forced to 0). Each arrangement runs ``--repeats`` times,
the two taking turns to go first; reported: median training seconds (the trial's time
objective), tokens/s, the ratio, and the test val_loss of both. These must agree within
their standard error: the reuse computes the same function, but an example's states
computed within another batch differ in the last bits (sums over another padded
length), and over a hundred steps that moves the trajectory slightly. With all 30 blocks
adapted nothing is reused, so that row's ratio is the measurement's noise.

    python benchmarks/frozen_blocks.py [--task sentiment_strength@256] [--steps 100]

Exits non-zero when the baseline or the reuse fails, or when their val_loss differs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import BaseAdapter
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training import TrainingBudget
from metapeft_optuna.training.prepared import PreparedTask
from metapeft_optuna.training.trainer import fine_tune

FRACTIONS = (0.25, 0.5, 1.0)
REUSE = BaseAdapter.frozen_blocks  # the property; the baseline swaps it for 0
RECOMPUTE = property(lambda self: 0)


def trial(loaded, prepared, layers: int, steps: int, batch: int, reuse: bool):
    """One LoRA fine-tune of the last ``layers`` blocks."""
    BaseAdapter.frozen_blocks = REUSE if reuse else RECOMPUTE
    hyperparameters = {
        "learning_rate": 2e-3,
        "steps": steps,
        "batch_size": batch,
        "rank": 8,
        "alpha": 16.0,
        "dropout": 0.05,
        "target_modules": "qv",
        "num_layers": layers,
    }
    budget = TrainingBudget(curve_points=1, eval_examples=len(prepared.test))
    return fine_tune(loaded, prepared, "lora", hyperparameters, budget)


def alternating(repeats: int, run: Callable[[bool], Any]) -> dict[bool, list]:
    """``run(side)`` ``repeats`` times for each side (False: the baseline, True: the
    product), the two taking turns to go first."""
    runs: dict[bool, list] = {False: [], True: []}
    for repeat in range(repeats):
        for side in (False, True) if repeat % 2 == 0 else (True, False):
            runs[side].append(run(side))
    return runs


def val_loss_agreement(runs: dict[bool, list]) -> tuple[str, bool]:
    """The first runs' test val_loss (baseline, product) as a table cell with the
    standard error of their difference and how many of it they are apart, and whether
    they agree within one."""
    loss = {side: results[0].metrics["val_loss"] for side, results in runs.items()}
    se = math.hypot(*(results[0].metrics["val_loss_se"] for results in runs.values()))
    gap = abs(loss[True] - loss[False])
    same = gap <= se
    apart = gap / se if se else 0.0
    differ = "" if same else ", DIFFER"
    cell = f"{loss[False]:.4f}, {loss[True]:.4f} (se {se:.4f}: {apart:.1f} se apart{differ})"
    return cell, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment_strength@256")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--eval-examples", type=int, default=100)
    args = parser.parse_args()
    loaded = load_model("smollm2-135m")
    budget = TrainingBudget(eval_examples=args.eval_examples)
    prepared = PreparedTask.prepare(load_task(args.task), loaded.tokenizer, budget)
    print(
        f"{args.task}, LoRA rank 8 on q/v, {args.steps} steps x batch {args.batch}, "
        f"{args.repeats} repeats; BLAS {metapeft_optuna.BLAS.name}"
    )
    print(
        "| layers adapted | recompute: train s | reuse: train s | speed-up | tokens/s "
        "(recompute -> reuse) | val_loss (recompute, reuse) |"
    )
    print("|---|---:|---:|---:|---:|---|")
    failed, total = False, len(loaded.model.layers)
    for fraction in FRACTIONS:
        layers = max(1, round(fraction * total))  # as the search space maps the fraction
        try:
            run = partial(trial, loaded, prepared, layers, args.steps, args.batch)
            runs = alternating(args.repeats, run)
        except Exception as exc:  # a failing side fails the benchmark, after the table
            print(f"| {layers} of {total} | failed: {exc} |")
            failed = True
            continue
        seconds = {r: statistics.median(x.train_seconds for x in runs[r]) for r in runs}
        speed = {r: statistics.median(x.tokens_per_second for x in runs[r]) for r in runs}
        losses, same = val_loss_agreement(runs)
        failed |= not same
        print(
            f"| {layers} of {total} | {seconds[False]:.2f} | "
            f"{seconds[True]:.2f} | {seconds[False] / seconds[True]:.2f}x | "
            f"{speed[False]:.0f} -> {speed[True]:.0f} | {losses} |"
        )
    BaseAdapter.frozen_blocks = REUSE
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
