"""``TaskCharacteristics``: meta-features of a task, computed from its data and tokenizer."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .task import DOMAINS, TASK_TYPES, Task

PROBE_EXAMPLES = 400


@dataclass(frozen=True)
class TaskCharacteristics:
    """Meta-features of a task (the seed's six fields first, then further ones).

    Attributes:
        dataset_size: Number of examples.
        sequence_length: Mean tokens per example (prompt + answer), rounded up.
        vocabulary_size: Distinct token ids used by the data.
        domain: One of :data:`~metapeft_optuna.tasks.task.DOMAINS`.
        task_type: One of :data:`~metapeft_optuna.tasks.task.TASK_TYPES`.
        complexity_score: In [0, 1]: the mean of (a) how poorly a character n-gram
            1-nearest-neighbour probe predicts the first answer token from the prompt,
            corrected for chance, and (b) ``1 - 1/answer_tokens`` (longer answers are
            harder to produce exactly).
        num_classes: Distinct answers of a classification task (0 otherwise).
        label_entropy: Entropy of the answer distribution over ``log(num_classes)``.
        majority_fraction: Share of the most frequent answer.
        answer_length: Mean answer tokens.
        input_length: Mean prompt tokens.
        input_length_std: Standard deviation of prompt tokens.
        type_token_ratio: Distinct / total prompt tokens.
        answer_input_overlap: Share of answer characters that also occur in the prompt.

    Example:
        >>> from metapeft_optuna.models import load_model
        >>> from metapeft_optuna.tasks import load_task
        >>> _, tokenizer, _ = load_model("tiny")
        >>> chars = TaskCharacteristics.from_task(load_task("parity@64"), tokenizer)
        >>> chars.dataset_size, chars.num_classes, len(chars.to_vector())
        (64, 2, 22)
    """

    dataset_size: int
    sequence_length: int
    vocabulary_size: int
    domain: str
    task_type: str
    complexity_score: float
    num_classes: int = 0
    label_entropy: float = 0.0
    majority_fraction: float = 1.0
    answer_length: float = 1.0
    input_length: float = 0.0
    input_length_std: float = 0.0
    type_token_ratio: float = 0.0
    answer_input_overlap: float = 0.0

    @classmethod
    def from_task(cls, task: Task, tokenizer: Any) -> TaskCharacteristics:
        """Compute the characteristics of ``task`` as ``tokenizer`` sees it."""
        prompts = [e.render_prompt(tokenizer) for e in task.examples]
        answers = [e.completion for e in task.examples]
        prompt_ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
        answer_ids = [tokenizer.encode(a, add_special_tokens=False) for a in answers]
        p_len = np.array([len(p) for p in prompt_ids], dtype=float)
        a_len = np.array([len(a) for a in answer_ids], dtype=float)
        counts = Counter(answers)
        n_classes = len(counts) if task.task_type == "classification" else 0
        probs = np.array(list(counts.values()), dtype=float) / len(answers)
        entropy = float(-(probs * np.log(probs)).sum())
        all_prompt_tokens = [t for ids in prompt_ids for t in ids]
        vocabulary = set(all_prompt_tokens) | {t for ids in answer_ids for t in ids}
        first_tokens = [ids[0] if ids else -1 for ids in answer_ids]
        skill = _probe_skill(prompts, first_tokens)
        mean_answer = float(a_len.mean())
        return cls(
            dataset_size=len(task.examples),
            sequence_length=math.ceil(float((p_len + a_len).mean())),
            vocabulary_size=len(vocabulary),
            domain=task.domain,
            task_type=task.task_type,
            complexity_score=round(0.5 * (1 - skill) + 0.5 * (1 - 1 / max(mean_answer, 1)), 4),
            num_classes=n_classes,
            label_entropy=round(entropy / math.log(len(counts)), 4) if len(counts) > 1 else 0.0,
            majority_fraction=round(float(probs.max()), 4),
            answer_length=round(mean_answer, 3),
            input_length=round(float(p_len.mean()), 3),
            input_length_std=round(float(p_len.std()), 3),
            type_token_ratio=round(len(set(all_prompt_tokens)) / max(len(all_prompt_tokens), 1), 4),
            answer_input_overlap=round(_overlap(prompts, answers), 4),
        )

    def to_vector(self) -> np.ndarray:
        """A stable float32 vector, entry ``i`` named ``feature_names()[i]``."""
        numeric = [
            math.log1p(self.dataset_size),
            math.log1p(self.sequence_length),
            math.log1p(self.vocabulary_size),
            self.complexity_score,
            math.log1p(self.num_classes),
            self.label_entropy,
            self.majority_fraction,
            math.log1p(self.answer_length),
            math.log1p(self.input_length),
            self.input_length_std / (self.input_length + 1),
            self.type_token_ratio,
            self.answer_input_overlap,
        ]
        one_hot = [float(self.domain == d) for d in DOMAINS]
        one_hot += [float(self.task_type == t) for t in TASK_TYPES]
        return np.array(numeric + one_hot, dtype=np.float32)

    @staticmethod
    def feature_names() -> list[str]:
        """Names of the :meth:`to_vector` entries."""
        numeric = [
            "log_dataset_size",
            "log_sequence_length",
            "log_vocabulary_size",
            "complexity_score",
            "log_num_classes",
            "label_entropy",
            "majority_fraction",
            "log_answer_length",
            "log_input_length",
            "input_length_cv",
            "type_token_ratio",
            "answer_input_overlap",
        ]
        return numeric + [f"domain={d}" for d in DOMAINS] + [f"task_type={t}" for t in TASK_TYPES]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskCharacteristics:
        """Inverse of :meth:`to_dict`; ignores unknown keys from newer versions."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _probe_skill(prompts: list[str], targets: list[int]) -> float:
    """Chance-corrected cross-validated accuracy of a char n-gram 1-NN probe, in [0, 1]."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    idx = rng.permutation(len(prompts))[:PROBE_EXAMPLES]
    x = [prompts[i] for i in idx]
    y = np.array([targets[i] for i in idx])
    majority = Counter(y.tolist()).most_common(1)[0][1] / len(y)
    if majority == 1.0 or len(y) < 6:
        return 1.0
    features = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)).fit_transform(x)
    with warnings.catch_warnings():
        # Free-form answers give many distinct targets, which scikit-learn warns "could
        # represent a regression problem"; a 1-NN probe is meant for exactly that case.
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        predicted = cross_val_predict(
            KNeighborsClassifier(n_neighbors=1), features, y, cv=KFold(n_splits=3)
        )
    acc = float((predicted == y).mean())
    return float(np.clip((acc - majority) / (1 - majority), 0.0, 1.0))


def _overlap(prompts: list[str], answers: list[str]) -> float:
    shared = total = 0
    for prompt, answer in zip(prompts, answers):
        chars = set(prompt.lower())
        text = answer.strip().lower()
        shared += sum(ch in chars for ch in text)
        total += len(text)
    return shared / max(total, 1)
