"""``PreparedTask``: a task tokenised once for all the trials of a study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import TrialFailedError
from ..peft import BaseAdapter
from ..peft.model_access import embedding_dim
from ..tasks import Example, Task
from .batching import EncodedExample, encode_example, encode_task_examples
from .evaluation import score_test
from .frozen import FrozenBlocks
from .labels import LabelSet
from .results import TrainingBudget

EVAL_STATES_MB = 256  # per split and frozen-block count; larger splits are recomputed


@dataclass
class PreparedTask:
    """A task tokenised once for many trials: encoded splits and the label set.

    Attributes:
        task: The task.
        train: Encoded training examples.
        validation: Encoded validation examples (learning-curve points).
        test: The held-out test examples (the objectives).
        test_encoded: The same, encoded.
        labels: The classification label set, else None.
        longest: Tokens in the longest training or validation example.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> _, tokenizer, _ = load_model("tiny")
        >>> from metapeft_optuna.tasks import load_task
        >>> prepared = PreparedTask.prepare(load_task("parity@64"), tokenizer, TrainingBudget())
        >>> len(prepared.train), len(prepared.test), prepared.labels.labels
        (64, 400, (' even', ' odd'))
    """

    task: Task
    train: list[EncodedExample]
    validation: list[EncodedExample]
    test: tuple[Example, ...]
    test_encoded: list[EncodedExample]
    labels: LabelSet | None
    longest: int
    _eval_states: dict[tuple[int, int, str], FrozenBlocks] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def prepare(
        cls, task: Task, tokenizer: Any, budget: TrainingBudget, max_length: int | None = None
    ) -> PreparedTask:
        """Split and tokenise ``task`` once.

        Args:
            task: The task.
            tokenizer: The model's tokenizer.
            budget: Split seed and split sizes.
            max_length: Truncate longer examples to this many tokens, keeping their first
                tokens as mlx-lm does, with one warning naming file and line (None: no
                limit). :class:`PEFTObjective` passes the model's context less the virtual
                tokens its search space may add.
        """
        splits = task.splits(seed=budget.split_seed)
        train = (
            splits.train[: budget.max_train_examples] if budget.max_train_examples else splits.train
        )
        encoded_train = encode_task_examples(train, tokenizer, max_length)
        validation = encode_task_examples(
            splits.validation[: budget.curve_examples], tokenizer, max_length
        )
        if not encoded_train or not validation:
            raise TrialFailedError(
                f"{task.name}: every training or validation example is longer than "
                f"{max_length} tokens, the most the model reads; shorten the prompts."
            )
        test = tuple(splits.test[: budget.eval_examples])
        test_encoded = encode_task_examples(test, tokenizer, max_length)
        if len(test_encoded) != len(test):  # some prompts fill the context: leave them out
            pairs = [(e, encode_example(e, tokenizer, max_length)) for e in test]
            test = tuple(e for e, encoded in pairs if encoded is not None)
            test_encoded = [encoded for _, encoded in pairs if encoded is not None]
        longest = max(e.length for e in encoded_train + validation)
        return cls(
            task,
            encoded_train,
            validation,
            test,
            test_encoded,
            LabelSet.from_task(task, tokenizer),
            longest,
        )

    def score(self, adapter: BaseAdapter, tokenizer: Any, accuracy: bool) -> dict[str, float]:
        """The test metrics of ``adapter`` (see :func:`score_test`)."""
        return score_test(
            adapter,
            self.task,
            self.test,
            self.test_encoded,
            tokenizer,
            self.labels,
            accuracy=accuracy,
            frozen=self.eval_states(adapter, "test"),
        )

    def eval_states(self, adapter: BaseAdapter, split: str) -> FrozenBlocks | None:
        """The ``"validation"`` or ``"test"`` examples' states after ``adapter``'s frozen
        lower blocks, kept for every trial that freezes as many blocks of the same model
        (in host memory: not a later trial's peak memory). None when ``adapter`` freezes
        no blocks or all of them, or when the states would take more than
        ``EVAL_STATES_MB``."""
        blocks = adapter.frozen_blocks
        if not 0 < blocks < len(adapter.base.model.layers):
            return None
        # The states hold the model, so its id is not reused while they are kept.
        key = (id(adapter.base), blocks, split)
        if key not in self._eval_states:
            examples = self.validation if split == "validation" else self.test_encoded
            tokens = sum(e.length for e in examples)
            if tokens * embedding_dim(adapter.base) * 4 > EVAL_STATES_MB * 2**20:
                return None
            self._eval_states[key] = FrozenBlocks(adapter, examples, blocks, on_host=True)
        return self._eval_states[key]
