"""Synthetic experience with a known structure, for fast meta-learning tests.

Accuracy depends on the configuration *and* on the task (generation tasks favour LoRA,
classification tasks favour prompt methods; every task has its own best learning rate),
so a meta-model that reads task features can beat one that does not.
"""

from __future__ import annotations

import dataclasses
import math

from metapeft_optuna import schema
from metapeft_optuna.meta.experience import PEFTExperience
from metapeft_optuna.models import load_model
from metapeft_optuna.peft import PEFTMethod
from metapeft_optuna.tasks import TaskCharacteristics, load_task
from metapeft_optuna.training.search_space import PEFTSearchSpace

import numpy as np

TASKS = (
    "parity@64",
    "sentiment_strength@64",
    "iris",
    "language_id@64",
    "addition@64",
    "number_to_words@64",
    "roman_numerals@64",
    "reverse_word@64",
)
MODEL_INFO = {
    "name": "tiny",
    "num_parameters": 90624,
    "num_layers": 2,
    "hidden_size": 64,
    "vocab_size": 259,
    "quantization_bits": None,
}


def true_outcome(chars: TaskCharacteristics, params: dict) -> dict[str, float]:
    generation = chars.task_type == "generation"
    method = params["method"]
    base = {
        "lora": 0.75,
        "dora": 0.72,
        "adalora": 0.7,
        "prompt_tuning": 0.55,
        "prefix_tuning": 0.6,
        "p_tuning": 0.5,
    }[method]
    if not generation and method in ("prompt_tuning", "prefix_tuning", "p_tuning"):
        base += 0.3
    best_lr = 1e-3 if generation else 1e-2
    penalty = 0.08 * (math.log10(params["learning_rate"]) - math.log10(best_lr)) ** 2
    accuracy = float(np.clip(base - penalty - 0.2 * chars.complexity_score, 0, 1))
    steps, batch = params["steps"], params["batch_size"]
    memory = 500 + 20 * batch * (2 if method in ("prompt_tuning", "p_tuning") else 1)
    seconds = steps * batch * 0.05 * (1.5 if method == "p_tuning" else 1.0)
    return {"accuracy": accuracy, "peak_memory_mb": memory, "train_seconds": seconds}


def ran(experience: PEFTExperience, **changed) -> PEFTExperience:
    """``experience`` as if run with some hyperparameters changed (outcomes unchanged)."""
    return dataclasses.replace(
        experience, hyperparameters={**experience.hyperparameters, **changed}
    )


def synthetic_experiences(
    per_task: int = 24, seed: int = 0, noise: float = 0.02
) -> list[PEFTExperience]:
    _, tokenizer, _ = load_model("tiny")
    space = PEFTSearchSpace()
    rng = np.random.default_rng(seed)
    out = []
    for task_name in TASKS:
        chars = TaskCharacteristics.from_task(load_task(task_name), tokenizer)
        for i in range(per_task):
            params = space.sample(rng, space.methods[i % len(space.methods)])
            metrics = true_outcome(chars, params)
            metrics["accuracy"] = float(np.clip(metrics["accuracy"] + rng.normal(0, noise), 0, 1))
            out.append(
                PEFTExperience(
                    task_characteristics=chars,
                    method_used=PEFTMethod(params["method"]),
                    hyperparameters=params,
                    performance_metrics=metrics,
                    task_name=task_name,
                    model_info=MODEL_INFO,
                    learning_curve=({"step": 1, "val_metric": metrics["accuracy"] / 2},),
                    uid=f"{task_name}-{i}",
                    study=f"synthetic-{task_name}",
                )
            )
    assert set(schema.DEFAULT_OBJECTIVES) == set(out[0].performance_metrics)
    return out
