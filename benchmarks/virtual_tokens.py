"""Virtual tokens computed once per batch: prompt tuning and P-tuning trials with and
without it.

Prompt tuning and P-tuning put their virtual tokens before every example. Under causal
attention those tokens see only each other, so their keys and values are the same for
every example of a batch: the product computes them in one batch-1 pass and lets the
batch attend to them as a prefix (``SharedVirtualTokens`` in
``metapeft_optuna/peft/virtual_tokens.py``). Baseline, measured in the same run on the
same trials: HF peft's formulation, the virtual token embeddings concatenated in front of
every example's. Each method runs ``--repeats`` times, the two taking turns to go first;
reported: median training seconds (the trial's time objective), tokens/s, peak memory
(the memory objective), evaluation seconds, the ratio, and the test val_loss of both,
which must agree within their standard error (the same function, summed in another
order). Before the trials, the two formulations' hidden states on one batch must agree
to 1e-4.

    python benchmarks/virtual_tokens.py [--task sentiment_strength@256] [--steps 40]

Exits non-zero when the baseline or the product fails, or when their hidden states or
val_loss differ.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import AdapterFactory, model_access
from metapeft_optuna.peft.virtual_tokens import VirtualTokenAdapter
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training import TrainingBudget
from metapeft_optuna.training.batching import collate
from metapeft_optuna.training.prepared import PreparedTask
from metapeft_optuna.training.trainer import fine_tune

import mlx.core as mx

METHODS = {
    "prompt_tuning": {"init": "random"},
    "p_tuning": {"encoder_type": "mlp", "encoder_hidden_size": 128},
}
SHARED = VirtualTokenAdapter.__call__


def prepended(self, inputs, cache=None):
    """HF peft's formulation: the virtual tokens in front of every example."""
    if cache is not None or not self.num_virtual_tokens:
        return SHARED(self, inputs, cache)
    embeddings = model_access.embed(self.base, inputs)
    virtual = self.virtual_tokens().astype(embeddings.dtype)
    virtual = mx.broadcast_to(virtual[None], (inputs.shape[0], *virtual.shape))
    both = mx.concatenate([virtual, embeddings], axis=1)
    return model_access.hidden_states(self.base, None, None, both)[:, self.num_virtual_tokens :]


def forward_gap(loaded, prepared, method: str, args) -> float:
    """Largest difference between the two formulations' hidden states on one batch of
    test examples (an untrained adapter: the same function, so about 1e-5)."""
    adapter = AdapterFactory.create_adapter(
        method, loaded.model, {"num_virtual_tokens": args.virtual_tokens, **METHODS[method]}
    )
    try:
        tokens = collate(prepared.test_encoded[: args.batch]).tokens
        return mx.abs(SHARED(adapter, tokens) - prepended(adapter, tokens)).max().item()
    finally:
        adapter.detach()


def trial(loaded, prepared, method: str, args, shared: bool):
    VirtualTokenAdapter.__call__ = SHARED if shared else prepended
    hyperparameters = {
        "learning_rate": 1e-2,
        "steps": args.steps,
        "batch_size": args.batch,
        "num_virtual_tokens": args.virtual_tokens,
        **METHODS[method],
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
        runs = {True: [], False: []}
        try:
            gap = forward_gap(loaded, prepared, method, args)
            if not gap <= 1e-4:
                raise ValueError(f"the two formulations' hidden states differ by {gap:.2e}")
            for repeat in range(args.repeats):
                for shared in (False, True) if repeat % 2 == 0 else (True, False):
                    runs[shared].append(trial(loaded, prepared, method, args, shared))
        except Exception as exc:  # a failing side fails the benchmark, after the table
            print(f"| {method} | failed: {exc} |")
            failed = True
            continue

        fields = ("train_seconds", "tokens_per_second", "peak_memory_mb", "eval_seconds")
        med = {
            f: {s: statistics.median(getattr(r, f) for r in runs[s]) for s in runs} for f in fields
        }
        loss = {s: runs[s][0].metrics["val_loss"] for s in runs}
        se = math.hypot(*(runs[s][0].metrics["val_loss_se"] for s in runs))
        same = abs(loss[True] - loss[False]) <= se
        apart = abs(loss[True] - loss[False]) / se if se else 0.0
        failed |= not same
        seconds = med["train_seconds"]
        print(
            f"| {method} | {seconds[False]:.2f} | {seconds[True]:.2f} | "
            f"{seconds[False] / seconds[True]:.2f}x | "
            + " | ".join(f"{med[f][False]:.0f} -> {med[f][True]:.0f}" for f in fields[1:3])
            + f" | {med['eval_seconds'][False]:.1f} -> {med['eval_seconds'][True]:.1f} | "
            f"{loss[False]:.4f}, {loss[True]:.4f} "
            f"({apart:.1f} se{'' if same else ', DIFFER'}) |",
            flush=True,
        )
    VirtualTokenAdapter.__call__ = SHARED
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
