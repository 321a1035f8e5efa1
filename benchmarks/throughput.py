"""Training throughput: metapeft's MLX trainer vs PyTorch + HF peft on the same work.

LoRA rank 8 on q_proj and v_proj of SmolLM2-135M (float32 weights from the same GGUF),
a batch of the same classification examples (same token ids, batch size and padded
length), loss on the answer tokens, AdamW. Each framework runs in its own process;
tokens/s counts the padded batch (identical for both). Run:

    python benchmarks/throughput.py [--task sentiment_strength@256] [--batch 16] [--steps 8]

PyTorch needs the optional extra: ``pip install -e ".[torch-baseline]"`` (torch 2.13.0,
peft, gguf); without it the script measures MLX alone and exits non-zero, as it does when
any trainer fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def build_batch(task: str, batch: int) -> dict:
    """Token ids, answer mask and answer positions, shared by both frameworks."""
    import metapeft_optuna  # noqa: F401
    from metapeft_optuna.models import load_model
    from metapeft_optuna.tasks import load_task
    from metapeft_optuna.training.batching import collate, encode_task_examples

    _, tokenizer, _ = load_model("smollm2-135m-q4")
    examples = encode_task_examples(load_task(task).splits().train[:batch], tokenizer)
    b = collate(examples)
    return {
        "tokens": b.tokens.tolist(),
        "positions": b.positions.tolist(),
        "targets": b.targets.tolist(),
        "mask": b.mask.tolist(),
    }


def run_mlx(data: dict, steps: int) -> dict:
    import metapeft_optuna
    from metapeft_optuna.models import load_model
    from metapeft_optuna.peft import AdapterFactory
    from metapeft_optuna.training.batching import Batch
    from metapeft_optuna.training.step import make_optimizer, make_train_step

    import mlx.core as mx

    model, _, _ = load_model("smollm2-135m")
    adapter = AdapterFactory.create_adapter("lora", model, {"rank": 8, "alpha": 16})
    adapter.train()
    batch = Batch(
        mx.array(data["tokens"]),
        mx.array(data["positions"]),
        mx.array(data["targets"]),
        mx.array(data["mask"]),
        mx.array([len(t) for t in data["tokens"]]),
    )
    optimizer = make_optimizer(1e-4, 100)
    step = make_train_step(adapter, optimizer)
    for _ in range(2):
        mx.eval(step(batch)[0], adapter.state, optimizer.state)
    mx.reset_peak_memory()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        mx.eval(step(batch)[0], adapter.state, optimizer.state)
        times.append(time.perf_counter() - start)
    return {
        "step_s": statistics.median(times),
        "peak_mb": mx.get_peak_memory() / 2**20,
        "backend": f"mlx {mx.__version__}, BLAS {metapeft_optuna.BLAS.name}",
    }


def run_torch(data: dict, steps: int, logits_to_keep: bool) -> dict:
    from metapeft_optuna.models.smollm2 import smollm2_gguf_path

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    gguf = smollm2_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32
    )
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    )
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = torch.tensor(data["tokens"])
    positions = torch.tensor(data["positions"])
    targets = torch.tensor(data["targets"])
    mask = torch.tensor(data["mask"])
    # The standard HF recipe: labels = -100 except on answer tokens, full-sequence logits.
    # HF shifts labels by one inside the loss: the label at p + 1 is predicted at p. The
    # longest answers' last target (EOS) is predicted at the last input position, so its
    # label would fall past the batch: it is dropped. The step's compute is unchanged (the
    # standard recipe computes logits at every position whatever carries a label).
    labels = torch.full_like(tokens, -100)
    for row in range(tokens.shape[0]):
        n = int(mask[row].sum())
        inside = positions[row, :n] + 1 < tokens.shape[1]
        labels[row, positions[row, :n][inside] + 1] = targets[row, :n][inside]

    def step():
        optimizer.zero_grad()
        if logits_to_keep:
            hidden = model.base_model.model.model(input_ids=tokens).last_hidden_state
            picked = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
            logits = model.base_model.model.lm_head(picked)
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), reduction="none"
            )
            loss = (loss * mask.flatten()).sum() / mask.sum()
        else:
            loss = model(input_ids=tokens, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(times), "backend": f"torch {torch.__version__}"}


def worker(args: argparse.Namespace) -> None:
    data = json.loads(sys.stdin.read())
    if args.worker == "mlx":
        result = run_mlx(data, args.steps)
    else:
        result = run_torch(data, args.steps, logits_to_keep=args.worker == "torch-answer-only")
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def spawn(kind: str, data: dict, steps: int) -> dict | None:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--steps", str(steps)],
        input=json.dumps(data),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        print(f"{kind} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment_strength@256")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument(
        "--worker", choices=["mlx", "torch", "torch-answer-only"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    data = build_batch(args.task, args.batch)
    shape = (len(data["tokens"]), len(data["tokens"][0]))
    tokens = shape[0] * shape[1]
    print(
        f"LoRA r=8 (q,v) on SmolLM2-135M float32, task {args.task}, batch {shape[0]} x "
        f"{shape[1]} tokens, median of {args.steps} steps after 2 warm-up steps\n"
    )
    rows = [("metapeft MLX (compiled, answer-only logits)", spawn("mlx", data, args.steps))]
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print(
            "PyTorch baseline missing: install the extra with "
            "`pip install -e '.[torch-baseline]'`.\n"
        )
        rows.append(("PyTorch + HF peft (not installed)", None))
    else:
        rows.append(
            ("PyTorch + HF peft (standard recipe, full logits)", spawn("torch", data, args.steps))
        )
        rows.append(
            ("PyTorch + HF peft (answer-only logits)", spawn("torch-answer-only", data, args.steps))
        )
    print("| trainer | backend | step (s) | tokens/s | max RSS (MB) |")
    print("|---|---|---:|---:|---:|")
    for label, r in rows:
        if r is not None:
            print(
                f"| {label} | {r['backend']} | {r['step_s']:.3f} | {tokens / r['step_s']:.0f} "
                f"| {r['max_rss_mb']:.0f} |"
            )
    mlx = rows[0][1]
    for label, r in rows[1:]:
        if r is not None and mlx is not None:
            print(f"\nMLX / {label}: {r['step_s'] / mlx['step_s']:.2f}x tokens/s")
    failed = [label for label, r in rows if r is None]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
