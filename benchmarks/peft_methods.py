"""Trainable parameters, peak memory and step time of each PEFT method on one model.

One compiled training step (answer-only loss) at batch 8 on a built-in task; each
method is warmed up (compilation) before timing. Run:

    python benchmarks/peft_methods.py [--model smollm2-135m] [--batch 8] [--steps 5]

Prints a markdown table (the one in docs/peft-methods.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import metapeft_optuna
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import AdapterFactory
from metapeft_optuna.tasks import load_task
from metapeft_optuna.training.batching import encode_task_examples, iterate_batches
from metapeft_optuna.training.step import make_optimizer, make_train_step

import mlx.core as mx

METHODS = [
    ("LoRA r=8 (q,v)", "lora", {"rank": 8, "alpha": 16}),
    (
        "LoRA r=8 (attention + MLP)",
        "lora",
        {"rank": 8, "alpha": 16, "target_modules": "attention_mlp"},
    ),
    ("LoRA r=8 (q,v), last 8 blocks", "lora", {"rank": 8, "alpha": 16, "num_layers": 8}),
    ("DoRA r=8 (q,v)", "dora", {"rank": 8, "alpha": 16}),
    ("AdaLoRA r=12->8 (q,v)", "adalora", {"init_r": 12, "target_r": 8, "total_step": 100}),
    ("Prompt tuning, 20 tokens", "prompt_tuning", {"num_virtual_tokens": 20}),
    ("Prefix tuning, 20 tokens", "prefix_tuning", {"num_virtual_tokens": 20}),
    (
        "Prefix tuning, 20 tokens + MLP",
        "prefix_tuning",
        {"num_virtual_tokens": 20, "projection": True, "encoder_hidden_size": 256},
    ),
    ("P-tuning, 20 tokens, MLP 128", "p_tuning", {"num_virtual_tokens": 20}),
    (
        "P-tuning, 20 tokens, LSTM 128",
        "p_tuning",
        {"num_virtual_tokens": 20, "encoder_type": "lstm"},
    ),
]


def measure(model, tokenizer, method: str, config: dict, batch, steps: int) -> dict:
    adapter = AdapterFactory.create_adapter(method, model, config, tokenizer=tokenizer)
    adapter.train()
    optimizer = make_optimizer(1e-4, 100)
    step = make_train_step(adapter, optimizer)
    for _ in range(2):  # compile and warm up on this batch shape
        mx.eval(step(batch)[0], adapter.state, optimizer.state)
    mx.reset_peak_memory()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss, tokens, grads = step(batch)
        mx.eval(loss, adapter.state, optimizer.state)
        times.append(time.perf_counter() - start)
    result = {
        "params": adapter.num_trainable_parameters,
        "peak_mb": mx.get_peak_memory() / 2**20,
        "step_s": statistics.median(times),
    }
    adapter.detach()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="sentiment_strength@256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    model, tokenizer, info = load_model(args.model)
    examples = encode_task_examples(load_task(args.task).splits().train, tokenizer)
    # The same batch for every method: step time depends on the sequence length.
    batch = max(
        (next(iterate_batches(examples, args.batch, seed=s)) for s in range(8)),
        key=lambda b: b.tokens.shape[1],
    )
    measure(model, tokenizer, *METHODS[0][1:], batch, 1)  # warm up the BLAS thread pool
    shape = f"batch {args.batch} x {batch.tokens.shape[1]} tokens"
    print(
        f"model {info.name} ({info.num_parameters / 1e6:.1f}M parameters), task "
        f"{args.task}, {shape}, BLAS {metapeft_optuna.BLAS.name}, "
        f"median of {args.steps} compiled steps\n"
    )
    print("| method | trainable parameters | % of model | peak memory (MB) | step (s) |")
    print("|---|---:|---:|---:|---:|")
    for label, method, config in METHODS:
        r = measure(model, tokenizer, method, config, batch, args.steps)
        print(
            f"| {label} | {r['params']:,} | {100 * r['params'] / info.num_parameters:.3f} "
            f"| {r['peak_mb']:.0f} | {r['step_s']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
