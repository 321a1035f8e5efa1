"""The zero-shot baseline: the untuned model scored on a study's test split."""

from __future__ import annotations

import time
from typing import Any

from ..models import LoadedModel
from ..peft import BaseAdapter
from ..peft.config import AdapterConfig
from .prepared import PreparedTask


class UntunedModel(BaseAdapter):
    """The base model behind the adapter interface, with nothing trained: what every
    trial's fine-tune is measured against.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> model, _, _ = load_model("tiny")
        >>> UntunedModel(model).num_trainable_parameters
        0
    """

    method = None  # not a PEFT method
    config_class = AdapterConfig

    def __init__(self, model: Any):
        super().__init__(model, AdapterConfig())


def zero_shot(model: LoadedModel, prepared: PreparedTask, accuracy: bool) -> dict[str, float]:
    """The untuned model's test metrics, as :meth:`PreparedTask.score` returns them, plus
    ``eval_seconds``.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.tasks import load_task
        >>> from metapeft_optuna.training import TrainingBudget
        >>> loaded = load_model("tiny")
        >>> prepared = PreparedTask.prepare(load_task("parity@64"), loaded.tokenizer,
        ...                                 TrainingBudget(eval_examples=8))
        >>> sorted(zero_shot(loaded, prepared, accuracy=True))[:3]
        ['accuracy', 'accuracy_se', 'eval_seconds']
    """
    started = time.perf_counter()
    untuned = UntunedModel(model.model)
    untuned.eval()
    scores = prepared.score(untuned, model.tokenizer, accuracy)
    return {**scores, "eval_seconds": time.perf_counter() - started}
