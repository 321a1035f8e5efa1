"""Study throughput: fine-tunes per hour of one fixed list of trial configurations, run as
an Optuna study by metapeft (MLX) and by a PyTorch + HF peft objective, each side at each
arrangement of the same cores (by default 1 worker x 2 threads and 2 workers x 1 thread;
``--arrangements 1x2 2x1 2x2`` measures others too).

The configurations are drawn once from the product's search space (LoRA, DoRA, prompt
tuning and P-tuning, the methods HF peft runs the same way; every parameter as the study
draws it) and enqueued into a fresh study per side and arrangement; workers are separate
processes that take trials from the queue until it is empty. The MLX side is the product's
objective (``PEFTObjective``: the compiled trainer, learning curve, test scoring); the
PyTorch side is HF peft's standard recipe on SmolLM2-135M in float32 from the same GGUF:
the same token ids and batches, labels on the answer tokens, AdamW with the same warm-up
and cosine schedule. Both sides measure the same things, as the product's trial protocol
asks (docs/trial-protocol.md): the study's zero-shot baseline once, a 4-point learning
curve on 32 validation examples (clock stopped), and accuracy (the arg-max among the
labels' first tokens) and val_loss on the test examples, all from one teacher-forced pass
per batch of 32. Wall time counts everything a study does (process start, model load,
training, evaluation). Accuracy is compared configuration by configuration.

    python benchmarks/study_throughput.py [--configs 8] [--eval-examples 100] \
        [--arrangements 1x2 2x1]

Needs the ``torch-baseline`` extra; exits non-zero when a side fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import metapeft_optuna  # noqa: F401  (preloads BLAS before mlx)
from metapeft_optuna.training import PEFTSearchSpace
from metapeft_optuna.training.search_space import default_specs

import numpy as np
import optuna

TASK = "sentiment_strength@256"
METHODS = ("lora", "dora", "prompt_tuning", "p_tuning")
# The configurations' space: 10-30 steps, the product's default when this benchmark was
# first measured (docs/performance.md), so its figures stay comparable across runs.
SPACE = PEFTSearchSpace(methods=METHODS, specs=default_specs(steps=(10, 30, 10)))
ARRANGEMENTS = ((1, 2), (2, 1))  # (workers, threads per worker) on 2 cores
TARGETS = {
    "qv": ["q_proj", "v_proj"],
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "attention_mlp": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def configurations(n: int, seed: int) -> list[dict]:
    """``n`` configurations of the search space, the methods in turn."""
    space, rng = SPACE, np.random.default_rng(seed)
    return [space.sample(rng, method=METHODS[i % len(METHODS)]) for i in range(n)]


# --- the PyTorch + HF peft objective ------------------------------------------------------
class TorchObjective:
    """One trial: HF peft's adapter for the configuration, trained with the standard
    recipe, scored on the test examples. The base model is loaded once per worker."""

    def __init__(self, eval_examples: int):
        from metapeft_optuna.models import load_model
        from metapeft_optuna.models.smollm2 import smollm2_gguf_path
        from metapeft_optuna.tasks import load_task
        from metapeft_optuna.training import TrainingBudget
        from metapeft_optuna.training.prepared import PreparedTask

        import torch
        from transformers import AutoModelForCausalLM

        _, tokenizer, _ = load_model("smollm2-135m-q4")  # the tokenizer only
        self.budget = budget = TrainingBudget(eval_examples=eval_examples)
        self.prepared = PreparedTask.prepare(load_task(TASK), tokenizer, budget)
        self.gguf = gguf = smollm2_gguf_path()
        self.base = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32
        )
        self.space = SPACE
        self.torch = torch

    def peft_config(self, params: dict):
        from peft import (
            LoraConfig,
            PromptEncoderConfig,
            PromptEncoderReparameterizationType,
            PromptTuningConfig,
            PromptTuningInit,
            TaskType,
        )

        method, layers = params["method"], self.base.config.num_hidden_layers
        if method in ("lora", "dora"):
            top = max(1, round(params["lora_layer_fraction"] * layers))
            return LoraConfig(
                r=params["lora_rank"],
                lora_alpha=params["lora_alpha"],
                lora_dropout=params["lora_dropout"],
                target_modules=TARGETS[params["lora_targets"]],
                layers_to_transform=list(range(layers - top, layers)),
                use_dora=method == "dora",
                task_type=TaskType.CAUSAL_LM,
            )
        if method == "prompt_tuning":
            init = {
                "random": PromptTuningInit.RANDOM,
                "vocab": PromptTuningInit.SAMPLE_VOCAB,
                "text": PromptTuningInit.TEXT,
            }[params["prompt_init"]]
            text = {}
            if init == PromptTuningInit.TEXT:  # peft tokenizes the text with HF's tokenizer
                text = {
                    "prompt_tuning_init_text": self.prepared.task.description or "Answer.",
                    "tokenizer_name_or_path": str(self.gguf.parent),
                    "tokenizer_kwargs": {"gguf_file": self.gguf.name},
                }
            return PromptTuningConfig(
                num_virtual_tokens=params["num_virtual_tokens"],
                prompt_tuning_init=init,
                task_type=TaskType.CAUSAL_LM,
                **text,
            )
        encoder = {"mlp": "MLP", "lstm": "LSTM"}[params["ptuning_encoder"]]
        return PromptEncoderConfig(
            num_virtual_tokens=params["num_virtual_tokens"],
            encoder_reparameterization_type=PromptEncoderReparameterizationType[encoder],
            encoder_hidden_size=params["ptuning_hidden"],
            task_type=TaskType.CAUSAL_LM,
        )

    def batches(self, batch_size: int, steps: int, seed: int):
        from metapeft_optuna.training.batching import collate

        rng = np.random.default_rng(seed)
        train = self.prepared.train
        for _ in range(steps):
            picked = [train[i] for i in rng.choice(len(train), size=batch_size, replace=False)]
            b = collate(picked)
            tokens, attention = self.inputs(b)
            labels = self.torch.full_like(tokens, -100)
            positions, targets, mask = (np.array(a) for a in (b.positions, b.targets, b.mask))
            for row in range(len(picked)):
                for p, t, m in zip(positions[row], targets[row], mask[row], strict=True):
                    if m and p + 1 < tokens.shape[1]:
                        labels[row, p + 1] = int(t)
            yield tokens, attention, labels

    def inputs(self, batch):
        """A collated batch's token ids and attention mask (1 on its real tokens)."""
        ids = self.torch.tensor(np.array(batch.tokens), dtype=self.torch.long)
        real = np.arange(ids.shape[1])[None] < np.array(batch.lengths)[:, None]
        return ids, self.torch.tensor(real).long()

    def __call__(self, trial: optuna.Trial) -> float:
        import copy

        from peft import get_peft_model

        torch = self.torch
        self.space.suggest(trial, num_layers=self.base.config.num_hidden_layers)
        params = trial.params
        torch.manual_seed(0)
        if "zero_shot" not in trial.study.user_attrs:  # once per study, as the product
            trial.study.set_user_attr(
                "zero_shot", self.score(self.base, self.prepared.test_encoded)
            )
        start = time.perf_counter()
        model = get_peft_model(copy.deepcopy(self.base), self.peft_config(params))
        model.train()
        steps, lr = params["steps"], params["learning_rate"]
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
        warmup = max(1, int(steps * 0.1))
        schedule = torch.optim.lr_scheduler.SequentialLR(
            optimizer,
            [
                torch.optim.lr_scheduler.LinearLR(optimizer, 0.1, 1.0, warmup),
                torch.optim.lr_scheduler.CosineAnnealingLR(
                    optimizer, max(1, steps - warmup), lr * 0.1
                ),
            ],
            [warmup],
        )
        tokens_seen, train_seconds, curve = 0, 0.0, []
        curve_steps = set(self.budget.curve_steps(steps))
        batches = self.batches(params["batch_size"], steps, trial.number)
        for step, (tokens, attention, labels) in enumerate(batches, 1):
            optimizer.zero_grad()
            loss = model(input_ids=tokens, attention_mask=attention, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            tokens_seen += tokens.numel()
            if step in curve_steps:  # the clock stops while the curve point is scored
                train_seconds += time.perf_counter() - start
                curve.append(self.score(model, self.prepared.validation))
                model.train()
                start = time.perf_counter()
        train_seconds += time.perf_counter() - start
        trial.set_user_attr("train_seconds", train_seconds)
        trial.set_user_attr("train_tokens", tokens_seen)
        trial.set_user_attr("curve", curve)
        test = self.score(model, self.prepared.test_encoded)
        trial.set_user_attr("val_loss", test["val_loss"])
        return test["accuracy"]

    def score(self, model, examples, batch: int = 32) -> dict[str, float]:
        """Mean answer-token cross-entropy and accuracy (the arg-max among the labels'
        first tokens at the first answer position), from one teacher-forced pass per
        batch of 32, right-padded, as metapeft scores classification."""
        from metapeft_optuna.training.batching import collate

        torch = self.torch
        model.eval()
        first = torch.tensor(self.prepared.labels.first_tokens)
        nll = tokens = right = 0.0
        with torch.no_grad():
            for start in range(0, len(examples), batch):
                b = collate(examples[start : start + batch])
                ids, attention = self.inputs(b)
                logits = model(input_ids=ids, attention_mask=attention).logits
                positions = torch.tensor(np.array(b.positions), dtype=torch.long)
                targets = torch.tensor(np.array(b.targets), dtype=torch.long)
                mask = torch.tensor(np.array(b.mask))
                answer = logits.gather(1, positions[..., None].expand(-1, -1, logits.shape[-1]))
                losses = torch.nn.functional.cross_entropy(
                    answer.transpose(1, 2), targets, reduction="none"
                )
                nll += float((losses * mask).sum())
                tokens += float(mask.sum())
                choice = first[answer[:, 0][:, first].argmax(-1)]
                right += float((choice == targets[:, 0]).sum())
        return {"val_loss": nll / tokens, "accuracy": right / len(examples)}


# --- workers --------------------------------------------------------------------------
def worker(side: str, storage: str, study_name: str, eval_examples: int) -> None:
    """Take enqueued trials until none is left (a trial the queue did not hold is failed
    and ends the worker, so no side runs more work than the list)."""
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if side == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        objective = TorchObjective(eval_examples)
    else:
        from metapeft_optuna.training import PEFTObjective, TrainingBudget

        objective = PEFTObjective(
            TASK,
            "smollm2-135m",
            search_space=SPACE,
            budget=TrainingBudget(eval_examples=eval_examples),
            notes=False,
        )
        objective.loaded  # noqa: B018  (load the model before the first trial, as torch)
    study = optuna.load_study(study_name=study_name, storage=storage)
    while True:
        trial = study.ask()
        if "fixed_params" not in trial.storage.get_trial_system_attrs(trial._trial_id):
            study.tell(trial, state=TrialState.FAIL)  # the queue is empty
            return
        try:
            study.tell(trial, objective(trial))
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise


def run_side(side: str, configs: list[dict], workers: int, threads: int, args) -> dict:
    from metapeft_optuna.training import PEFTObjective

    folder = Path(tempfile.mkdtemp(prefix=f"throughput-{side}-"))
    storage = f"sqlite:///{folder / 'study.db'}"
    directions = (
        PEFTObjective(TASK, search_space=SPACE).directions if side == "mlx" else ["maximize"]
    )
    study = optuna.create_study(study_name=side, storage=storage, directions=directions)
    for config in configs:
        study.enqueue_trial(config)
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    command = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--storage",
        storage,
        "--eval-examples",
        str(args.eval_examples),
    ]
    start = time.perf_counter()
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    by_config = {json.dumps(t.params, sort_keys=True): t for t in done}
    accuracies = [
        by_config[key].values[0] if (key := json.dumps(c, sort_keys=True)) in by_config else None
        for c in configs
    ]
    # train_seconds: the product's third objective; the PyTorch objective's attribute
    train = [t.values[2] if side == "mlx" else t.user_attrs["train_seconds"] for t in done]
    return {
        "side": side,
        "workers": workers,
        "threads": threads,
        "ok": all(c == 0 for c in codes) and len(done) == len(configs),
        "wall_s": wall,
        "per_hour": 3600 * len(done) / wall,
        "mean_train_s": float(np.mean(train)) if train else math.nan,
        "accuracies": accuracies,
    }


def arrangement(text: str) -> tuple[int, int]:
    """``"2x1"`` -> (2 workers, 1 thread each)."""
    try:
        workers, threads = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WORKERSxTHREADS, e.g. 2x1") from None
    if workers < 1 or threads < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: workers and threads must be at least 1")
    return workers, threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--eval-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sides", nargs="+", default=["mlx", "torch"])
    parser.add_argument(
        "--arrangements",
        nargs="+",
        type=arrangement,
        default=list(ARRANGEMENTS),
        metavar="WORKERSxTHREADS",
        help="worker processes x threads per worker to measure, on each side",
    )
    parser.add_argument("--worker", choices=["mlx", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.storage, args.worker, args.eval_examples)
        return 0
    configs = configurations(args.configs, args.seed)
    print(
        f"{len(configs)} configurations on {TASK}, SmolLM2-135M, {args.eval_examples} test "
        f"examples each: {', '.join(c['method'] for c in configs)}\n",
        flush=True,
    )
    results = []
    for side in args.sides:
        for workers, threads in args.arrangements:
            r = run_side(side, configs, workers, threads, args)
            results.append(r)
            print(
                f"{side:5s} {workers} worker(s) x {threads} thread(s): {r['wall_s']:.0f} s, "
                f"{r['per_hour']:.1f} fine-tunes/h, mean train {r['mean_train_s']:.1f} s"
                + ("" if r["ok"] else "  FAILED"),
                flush=True,
            )
    print("\n| side | workers x threads | wall (s) | fine-tunes per hour | mean train (s) |")
    print("|---|---|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['side']} | {r['workers']} x {r['threads']} | {r['wall_s']:.0f} | "
            f"{r['per_hour']:.1f} | {r['mean_train_s']:.1f} |"
        )
    best = {
        s: max((r for r in results if r["side"] == s), key=lambda r: r["per_hour"])
        for s in args.sides
    }
    if {"mlx", "torch"} <= set(best):
        ratio = best["mlx"]["per_hour"] / best["torch"]["per_hour"]
        print(f"\nbest MLX / best PyTorch + peft: {ratio:.2f}x fine-tunes per hour")
        pairs = [
            (m, t)
            for m, t in zip(best["mlx"]["accuracies"], best["torch"]["accuracies"], strict=True)
            if m is not None and t is not None
        ]
        if len(pairs) > 1:
            diffs = [m - t for m, t in pairs]
            se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
            mlx, torch = (float(np.mean(side)) for side in zip(*pairs, strict=True))
            print(
                f"accuracy per configuration, MLX - PyTorch: {np.mean(diffs):+.3f} ± {se:.3f} "
                f"(means {mlx:.3f} and {torch:.3f}, {len(pairs)} configurations)"
            )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
