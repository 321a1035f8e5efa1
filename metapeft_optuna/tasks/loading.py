"""``load_task``: a built-in task name (optionally ``@size``) or a data file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UnknownTaskError
from .formats import load_task_file
from .task import Task
from .zoo import BUILTIN_TASKS, DEFAULT_SIZE, build_builtin, standard_sizes


def load_task(spec: str | Path, *, size: int | None = None, **file_options: Any) -> Task:
    """Load a built-in task or a JSONL/CSV file.

    Args:
        spec: ``"word_sentiment"``, ``"word_sentiment@256"``, or a path to a ``.jsonl``
            or ``.csv`` file.
        size: Number of examples (label-balanced subsample). Built-in tasks default to
            ``min(512, all)``; files default to all their examples.
        **file_options: Passed to :func:`load_task_file` for files (``task_type``,
            ``domain``, ``input_column``, ``label_column``, ``template``).

    Raises:
        UnknownTaskError: ``spec`` is neither a built-in name nor an existing file.
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
                    "positive integer, e.g. word_sentiment@256."
                )
            size = int(size_text)
        task = build_builtin(base)
        size = size or min(DEFAULT_SIZE, len(task.examples))
        return task.subsample(size) if size < len(task.examples) else task
    path = Path(spec).expanduser()
    if path.exists() or path.suffix.lower() in {".jsonl", ".csv"}:
        task = load_task_file(path, **file_options)
        return task.subsample(size) if size else task
    raise UnknownTaskError(
        f"unknown task {text!r}: not a built-in task (see `metapeft tasks "
        f"list`: {', '.join(sorted(BUILTIN_TASKS))}) and not a file."
    )


def list_tasks(with_sizes: bool = False) -> list[str]:
    """Names of the built-in tasks; with ``with_sizes``, every ``name@size`` variant."""
    if not with_sizes:
        return sorted(BUILTIN_TASKS)
    return [f"{name}@{s}" for name in sorted(BUILTIN_TASKS) for s in standard_sizes(name)]
