"""``load_task``: a built-in task name (optionally ``@size``), a data file or directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UnknownTaskError
from .formats import load_task_file
from .task import Task
from .zoo import BUILTIN_TASKS, builtin_task, standard_sizes


def load_task(spec: str | Path, *, size: int | None = None, **file_options: Any) -> Task:
    """Load a built-in task, a JSONL/CSV file, or an mlx-lm data directory.

    Args:
        spec: ``"sentiment_strength"``, ``"sentiment_strength@256"``, a path to a ``.jsonl``
            or ``.csv`` file, or a directory with ``train.jsonl`` and optionally
            ``valid.jsonl`` and ``test.jsonl`` (as for ``mlx_lm.lora --data``; a missing
            split is carved from ``train.jsonl``, see :func:`load_task_file`).
        size: Number of examples (label-balanced subsample). For built-in tasks, the
            number of *training* examples (default ``min(512, all)``), next to a fixed
            held-out set of 400 test and 64 validation examples where the task's pool
            allows (see :mod:`metapeft_optuna.tasks.zoo`); files default to all their
            examples. A directory's given validation and test examples are kept whole.
        **file_options: Passed to :func:`load_task_file` for files (``task_type``,
            ``domain``, ``name``, ``input_column``, ``label_column``, ``template``).

    Returns:
        The task.

    Raises:
        UnknownTaskError: ``spec`` is neither a built-in name nor an existing file or
            directory.
        DataFormatError: The file is malformed (``file:line: what is wrong``).

    Example:
        >>> task = load_task("parity@64")
        >>> task.name, len(task.examples), task.task_type
        ('parity@64', 64, 'classification')
    """
    text = str(spec)
    base, _, size_text = text.partition("@")
    if base in BUILTIN_TASKS:
        if size is None and size_text:
            if not size_text.isdigit() or int(size_text) < 1:
                raise UnknownTaskError(
                    f"task {text!r}: the size after '@' must be a "
                    "positive integer, e.g. sentiment_strength@256."
                )
            size = int(size_text)
        return builtin_task(base, size)
    path = Path(spec).expanduser()
    if path.exists() or path.suffix.lower() in {".jsonl", ".csv"}:
        task = load_task_file(path, **file_options)
        return task.subsample(size) if size else task
    raise UnknownTaskError(
        f"unknown task {text!r}: not a built-in task (see `metapeft tasks "
        f"list`: {', '.join(sorted(BUILTIN_TASKS))}) and not a file or data directory."
    )


def list_tasks(with_sizes: bool = False) -> list[str]:
    """Names of the built-in tasks; with ``with_sizes``, every ``name@size`` variant."""
    if not with_sizes:
        return sorted(BUILTIN_TASKS)
    return [f"{name}@{s}" for name in sorted(BUILTIN_TASKS) for s in standard_sizes(name)]
