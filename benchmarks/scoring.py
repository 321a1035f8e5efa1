"""Scoring a trial's test split: the product's way against the direct way, in one run.

The direct way (the baseline): greedy-decode every generation example whose
teacher-forced arg-maxes are not all right, and run one full forward pass per (example,
label) where classification compares label likelihoods. The product's way
(``training/evaluation.py``, ``training/labels.py``): the teacher-forced pass also
decides the misses whose first wrong token cannot normalise back onto the reference,
so only the rest are decoded; and label likelihoods come from one pass per prompt, each
label continuing from a copy of its KV cache. Both score the same adapter (SmolLM2-135M
after a short LoRA fine-tune on all blocks, so no frozen-block states are involved) on
the same test examples, and must give the same accuracy and val_loss.

    python benchmarks/scoring.py [--tasks count_vowels@256 number_words_fr@256] [--steps 40]

Exits non-zero when the baseline fails or the two disagree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import metapeft_optuna  # noqa: F401  (BLAS before mlx)
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import load_adapter
from metapeft_optuna.tasks import load_task, normalize_answer
from metapeft_optuna.training import PreparedTask, TrainingBudget
from metapeft_optuna.training.batching import EncodedExample, collate, eos_id
from metapeft_optuna.training.evaluation import greedy_decode, teacher_forced
from metapeft_optuna.training.loss import answer_logits
from metapeft_optuna.training.trainer import fine_tune

import mlx.core as mx
import mlx.nn as nn
import numpy as np

TASKS = ("count_vowels@256", "number_words_fr@256", "chat_subdivision_country@256")


def direct_accuracy(adapter, prepared: PreparedTask, tokenizer) -> tuple[float, float]:
    """``(accuracy, val_loss)`` the direct way."""
    forced = teacher_forced(adapter, prepared.test_encoded, "generation", None)
    examples, labels = prepared.test_encoded, prepared.labels
    if labels is not None:  # every (example, label) pair in full
        candidates = [EncodedExample(e.prompt, ids) for e in examples for ids in labels.token_ids]
        scores = np.zeros(len(candidates))
        for start in range(0, len(candidates), 32):
            batch = collate(candidates[start : start + 32])
            logits = answer_logits(adapter, batch).astype(mx.float32)
            nll = nn.losses.cross_entropy(logits, batch.targets) * batch.mask
            scores[start : start + 32] = -np.array(nll.sum(axis=1))
        chosen = scores.reshape(len(examples), -1).argmax(axis=1)
        gold = [labels.labels.index(e.completion) for e in prepared.test]
        return float(np.mean(chosen == np.array(gold))), forced.loss
    end = eos_id(tokenizer)
    hits = [hit and e.answer[-1] == end for hit, e in zip(forced.hits, examples)]
    rest = [i for i, hit in enumerate(hits) if not hit]
    if rest:
        longest = max(len(examples[i].answer) for i in rest)
        stop = set(getattr(tokenizer, "eos_token_ids", None) or [end])
        decoded = greedy_decode(adapter, [examples[i].prompt for i in rest], longest + 2, stop)
        for i, tokens in zip(rest, decoded):
            hits[i] = normalize_answer(tokenizer.decode(tokens)) == normalize_answer(
                prepared.test[i].completion
            )
    return float(np.mean(hits)), forced.loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eval-examples", type=int, default=400)
    args = parser.parse_args()
    loaded = load_model("smollm2-135m")
    budget = TrainingBudget(curve_points=1, eval_examples=args.eval_examples)
    hyperparameters = {
        "learning_rate": 2e-3,
        "steps": args.steps,
        "batch_size": 8,
        "rank": 8,
        "alpha": 16.0,
        "dropout": 0.0,
        "target_modules": "qv",
    }
    print(f"LoRA rank 8 on q/v of all blocks, {args.steps} steps x batch 8; SmolLM2-135M")
    print("| task | examples | direct: s | product: s | speed-up | accuracy (direct, ours ± se) |")
    print("|---|---:|---:|---:|---:|---|")
    failed = False
    for spec in args.tasks:
        prepared = PreparedTask.prepare(load_task(spec), loaded.tokenizer, budget)
        with tempfile.TemporaryDirectory() as folder:
            fine_tune(loaded, prepared, "lora", hyperparameters, budget, output_dir=folder)
            adapter = load_adapter(loaded.model, folder)
        adapter.eval()
        try:
            started = time.perf_counter()
            direct = direct_accuracy(adapter, prepared, loaded.tokenizer)
            direct_s = time.perf_counter() - started
            started = time.perf_counter()
            product = prepared.score(adapter, loaded.tokenizer, accuracy=True)
            product_s = time.perf_counter() - started
        except Exception as exc:  # no ratio to report
            print(f"| {spec} | scoring failed: {exc!r} |")
            failed = True
            continue
        finally:
            adapter.detach()
        same = direct[0] == product["accuracy"] and abs(direct[1] - product["val_loss"]) < 1e-4
        failed |= not same
        print(
            f"| {spec} | {len(prepared.test)} | {direct_s:.1f} | {product_s:.1f} | "
            f"**{direct_s / product_s:.2f}x** | {direct[0]:.4f}, {product['accuracy']:.4f} "
            f"± {product['accuracy_se']:.4f}"
            f"{'' if same else ' DIFFER'} |",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
