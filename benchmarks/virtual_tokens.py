"""Virtual tokens computed once per batch: prompt tuning and P-tuning trials with and
without it.

Prompt tuning and P-tuning put their virtual tokens before every example. Under causal
attention those tokens see only each other, so their keys and values are the same for
every example of a batch: the product computes them in one batch-1 pass and lets the
batch attend to them as a prefix (``VirtualTokenAdapter`` in
``metapeft_optuna/peft/virtual_tokens.py``). Baseline, measured in the same run on the
same trials: HF peft's formulation, the virtual token embeddings concatenated in front of
every example's (the adapter's own path for models it does not share them on,
``shares_virtual_tokens = False``). Each method runs ``--repeats`` times, the two taking
turns to go first; reported: median training seconds (the trial's time objective),
tokens/s, peak memory (the memory objective), evaluation seconds, the ratio, and the
test val_loss of both, which must agree within their standard error (the same function,
summed in another order). Before the trials, the two formulations' hidden states on one
batch must agree to 1e-4.

    python benchmarks/virtual_tokens.py [--task sentiment_strength@256] [--steps 40]

Exits non-zero when the baseline or the product fails, or when their hidden states or
val_loss differ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import AdapterFactory
from metapeft_optuna.peft.virtual_tokens import VirtualTokenAdapter
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training import TrainingBudget
from metapeft_optuna.training.batching import collate
from metapeft_optuna.training.prepared import PreparedTask
from metapeft_optuna.training.trainer import fine_tune

import mlx.core as mx
from frozen_blocks import alternating, val_loss_agreement

METHODS = {
    "prompt_tuning": {"init": "random"},
    "p_tuning": {"encoder_type": "mlp", "encoder_hidden_size": 128},
}
# Trial results reported besides the training seconds, each with its decimals.
REPORTED = {"tokens_per_second": 0, "peak_memory_mb": 0, "eval_seconds": 1}
PRODUCT_INIT = VirtualTokenAdapter.__init__


def per_example_init(self, *args, **kwargs) -> None:
    """The adapter as made, switched to the virtual tokens in front of every example."""
    PRODUCT_INIT(self, *args, **kwargs)
    self.shares_virtual_tokens = False


def config(method: str, args) -> dict:
    return {"num_virtual_tokens": args.virtual_tokens, **METHODS[method]}


def forward_gap(loaded, prepared, method: str, args) -> float:
    """Largest difference between the two formulations' hidden states on one batch of
    test examples (an untrained adapter: the same function, so about 1e-5)."""
    adapter = AdapterFactory.create_adapter(method, loaded.model, config(method, args))
    try:
        tokens = collate(prepared.test_encoded[: args.batch]).tokens
        shared = adapter(tokens)
        adapter.shares_virtual_tokens = False
        return mx.abs(shared - adapter(tokens)).max().item()
    finally:
        adapter.detach()


def trial(loaded, prepared, method: str, args, shared: bool):
    VirtualTokenAdapter.__init__ = PRODUCT_INIT if shared else per_example_init
    hyperparameters = {
        "learning_rate": 1e-2,
        "steps": args.steps,
        "batch_size": args.batch,
        **config(method, args),
    }
    budget = TrainingBudget(curve_points=1, eval_examples=len(prepared.test))
    return fine_tune(loaded, prepared, method, hyperparameters, budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment_strength@256")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--virtual-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--eval-examples", type=int, default=100)
    args = parser.parse_args()
    loaded = load_model("smollm2-135m")
    budget = TrainingBudget(eval_examples=args.eval_examples)
    prepared = PreparedTask.prepare(load_task(args.task), loaded.tokenizer, budget)
    print(
        f"{args.task}, {args.virtual_tokens} virtual tokens, {args.steps} steps x batch "
        f"{args.batch}, {args.repeats} repeats; BLAS {metapeft_optuna.BLAS.name}"
    )
    print(
        "| method | per example: train s | once per batch: train s | speed-up | tokens/s | "
        "peak MB | eval s | val_loss (per example, once per batch) |"
    )
    print("|---|---:|---:|---:|---|---|---|---|")
    failed = False
    for method in METHODS:
        try:
            gap = forward_gap(loaded, prepared, method, args)
            if not gap <= 1e-4:
                raise ValueError(f"the two formulations' hidden states differ by {gap:.2e}")
            runs = alternating(args.repeats, partial(trial, loaded, prepared, method, args))
        except Exception as exc:  # a failing side fails the benchmark, after the table
            print(f"| {method} | failed: {exc} |")
            failed = True
            continue
        med = {
            f: {
                side: statistics.median(getattr(r, f) for r in results)
                for side, results in runs.items()
            }
            for f in ("train_seconds", *REPORTED)
        }
        losses, same = val_loss_agreement(runs)
        failed |= not same
        seconds = med["train_seconds"]
        cells = [
            method,
            f"{seconds[False]:.2f}",
            f"{seconds[True]:.2f}",
            f"{seconds[False] / seconds[True]:.2f}x",
            *(f"{med[f][False]:.{d}f} -> {med[f][True]:.{d}f}" for f, d in REPORTED.items()),
            losses,
        ]
        print(f"| {' | '.join(cells)} |", flush=True)
    VirtualTokenAdapter.__init__ = PRODUCT_INIT
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
