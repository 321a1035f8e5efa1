"""Read task data: mlx-lm's JSONL formats and data directories, and CSV, with file:line errors.

Files are decoded as UTF-8; a byte-order mark (UTF-8, UTF-16 or UTF-32) is honoured and
removed, and any other encoding is a :class:`~metapeft_optuna.errors.DataFormatError`
that names the likely encoding and the ``iconv`` command that converts the file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import DataFormatError
from .encoding import read_text
from .task import DOMAINS, MIN_EXAMPLES, TASK_TYPES, Example, Task

# In mlx-lm's detection order (mlx_lm/tuner/datasets.py, create_dataset): a record with
# "prompt" and "completion" trains on the completion even if it also has "text".
JSONL_FORMATS = {
    "completions": ("prompt", "completion"),
    "chat": ("messages",),
    "text": ("text",),
}
# The files of an mlx-lm data directory (``mlx_lm.lora --data DIR``), split by split.
SPLIT_FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
CSV_INPUT_COLUMNS = ("input", "text", "prompt", "question", "sentence")
CSV_LABEL_COLUMNS = ("label", "output", "completion", "answer", "target")
CSV_TEMPLATE = "{input}\nAnswer:"
ROLES = ("system", "user", "assistant", "tool")


def load_task_file(
    path: str | Path,
    *,
    task_type: str | None = None,
    domain: str = "other",
    name: str | None = None,
    input_column: str | None = None,
    label_column: str | None = None,
    template: str = CSV_TEMPLATE,
) -> Task:
    """Load a task from a ``.jsonl`` or ``.csv`` file, or an mlx-lm data directory.

    JSONL lines use one of mlx-lm's formats, detected per line in mlx-lm's order:
    ``{"prompt", "completion"}``, then ``{"messages": [{"role", "content"}, ...]}`` (the
    last message must be the assistant's answer), then ``{"text"}``; one format per
    file. CSV files need a header with an input and a label column. A single file is
    split deterministically by :meth:`Task.splits`.

    A directory is read as ``mlx_lm.lora --data DIR`` reads it: ``train.jsonl``
    (required) becomes :attr:`Task.examples`, ``valid.jsonl`` :attr:`Task.validation`
    (learning curves) and ``test.jsonl`` :attr:`Task.test` (the objectives), used as
    given. Either of the last two may be missing; :meth:`Task.splits` then carves it
    from the training examples. All files of a directory must share one format.

    Args:
        path: The data file or directory.
        task_type: Override the inferred type (see :data:`TASK_TYPES`). Inferred as
            ``language_modeling`` for text, ``classification`` when answers come from a
            small set, else ``generation``.
        domain: One of :data:`DOMAINS` (a meta-feature).
        name: Task name (default: the file stem, or the directory's name).
        input_column: CSV input column (default: the first of
            :data:`CSV_INPUT_COLUMNS` present).
        label_column: CSV label column (default: the first of :data:`CSV_LABEL_COLUMNS`).
        template: CSV prompt template with an ``{input}`` field; the answer follows it
            after one space.

    Returns:
        The task; every example's ``origin`` is its ``file:line``.

    Raises:
        DataFormatError: Message starts with ``file:line:`` and says how to fix it.
    """
    path = Path(path)
    if task_type is not None and task_type not in TASK_TYPES:
        raise DataFormatError(path, None, f"task_type={task_type!r}; use one of {TASK_TYPES}.")
    if domain not in DOMAINS:
        raise DataFormatError(path, None, f"domain={domain!r}; use one of {DOMAINS}.")
    if path.is_dir():
        return _load_directory(path, task_type, domain, name)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        examples, fmt = read_jsonl(path)
    elif suffix == ".csv":
        examples, fmt = read_csv(path, input_column, label_column, template), "csv"
    else:
        raise DataFormatError(
            path,
            None,
            f"unsupported file type {suffix!r}; use .jsonl "
            "(prompt/completion, messages or text) or .csv.",
        )
    task_type = _task_type(task_type, fmt, examples, path)
    return Task(name or path.stem, tuple(examples), task_type, domain, source=str(path))


def _load_directory(path: Path, task_type: str | None, domain: str, name: str | None) -> Task:
    train_file = path / SPLIT_FILES["train"]
    if not train_file.is_file():
        raise DataFormatError(
            path,
            None,
            f"no {SPLIT_FILES['train']}; a data directory holds {SPLIT_FILES['train']} "
            f"(required), {SPLIT_FILES['valid']} and {SPLIT_FILES['test']} (optional), "
            "as for mlx_lm.lora --data; or pass a single .jsonl or .csv file.",
        )
    train, fmt, _ = _parse_jsonl(train_file)
    given: dict[str, list[Example]] = {"valid": [], "test": []}
    for split in given:
        split_file = path / SPLIT_FILES[split]
        if not split_file.is_file():
            continue  # Task.splits carves the missing split from train
        examples, split_fmt, first_line = _parse_jsonl(split_file)
        if split_fmt != fmt:
            # One format per task: its type, labels and scoring follow from the format.
            raise DataFormatError(
                split_file,
                first_line,
                f"lines are in the {split_fmt!r} format but {SPLIT_FILES['train']} is in "
                f"{fmt!r}; use one format for all files of a data directory.",
            )
        given[split] = examples
    everything = train + given["valid"] + given["test"]
    task_type = _task_type(task_type, fmt, everything, path)
    return Task(
        name or path.resolve().name,
        tuple(train),
        task_type,
        domain,
        source=str(path),
        validation=tuple(given["valid"]),
        test=tuple(given["test"]),
    )


def _task_type(task_type: str | None, fmt: str, examples: list[Example], path: Path) -> str:
    answers = {e.completion for e in examples}
    if fmt != "text" and len(examples) >= MIN_EXAMPLES and len(answers) == 1:
        raise DataFormatError(
            path,
            None,
            f"all {len(examples)} answers are {answers.pop()!r}, one value: a fine-tune "
            "learns nothing from it; give examples with at least two different answers.",
        )
    if task_type is None:
        return "language_modeling" if fmt == "text" else infer_task_type(examples)
    if task_type == "language_modeling" and fmt != "text":
        raise DataFormatError(path, None, 'language_modeling needs {"text"} lines.')
    return task_type


def infer_task_type(examples: list[Example]) -> str:
    """``classification`` when the answers form a small, repeated set; else ``generation``."""
    distinct = {e.completion for e in examples}
    small = 2 <= len(distinct) <= 32 and len(distinct) * 3 <= len(examples)
    return "classification" if small else "generation"


def read_jsonl(path: Path) -> tuple[list[Example], str]:
    """Parse a JSONL file; returns the examples and the format name."""
    examples, fmt, _ = _parse_jsonl(path)
    return examples, fmt


def _parse_jsonl(path: Path) -> tuple[list[Example], str, int]:
    """The examples, their format and the line number of the first one."""
    examples: list[Example] = []
    fmt: str | None = None
    first_line = 0
    # newline=None splits lines as open() does (\n, \r\n, \r) and not at U+2028 or
    # U+0085, which JSON strings may contain.
    for line_no, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                path, line_no, f"invalid JSON ({exc.msg} at column {exc.colno})."
            ) from exc
        if not isinstance(record, dict):
            raise DataFormatError(
                path, line_no, f"each line must be a JSON object, got {type(record).__name__}."
            )
        line_fmt = _jsonl_format(record, path, line_no)
        if fmt is None:
            fmt, first_line = line_fmt, line_no
        elif line_fmt != fmt:
            raise DataFormatError(
                path,
                line_no,
                f"line is in the {line_fmt!r} format "
                f"but earlier lines are {fmt!r}; use one format per file.",
            )
        examples.append(_jsonl_example(record, line_fmt, path, line_no))
    if fmt is None:
        raise DataFormatError(path, None, "the file has no examples.")
    return examples, fmt, first_line


def _jsonl_format(record: dict[str, Any], path: Path, line_no: int) -> str:
    for fmt, keys in JSONL_FORMATS.items():
        if all(k in record for k in keys):
            return fmt
    raise DataFormatError(
        path,
        line_no,
        f"keys {sorted(record)} match no format; expected "
        '{"prompt", "completion"}, {"messages"} or {"text"}.',
    )


def _string(value: Any, what: str, path: Path, line_no: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataFormatError(
            path, line_no, f"{what} must be a string, got {type(value).__name__}."
        )
    if not allow_empty and not value.strip():
        raise DataFormatError(path, line_no, f"{what} is empty.")
    return value


def _jsonl_example(record: dict[str, Any], fmt: str, path: Path, line_no: int) -> Example:
    origin = f"{path}:{line_no}"
    if fmt == "text":
        return Example("", _string(record["text"], '"text"', path, line_no), origin=origin)
    if fmt == "completions":
        prompt = _string(record["prompt"], '"prompt"', path, line_no, allow_empty=True)
        completion = _string(record["completion"], '"completion"', path, line_no)
        return Example(prompt, completion, origin=origin)
    messages = record["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        raise DataFormatError(
            path, line_no, '"messages" must be a list of at least two {"role", "content"} objects.'
        )
    pairs = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataFormatError(path, line_no, f'messages[{i}] needs "role" and "content".')
        if message["role"] not in ROLES:
            raise DataFormatError(
                path, line_no, f"messages[{i}] has role {message['role']!r}; use one of {ROLES}."
            )
        pairs.append(
            (
                message["role"],
                _string(
                    message["content"], f"messages[{i}].content", path, line_no, allow_empty=True
                ),
            )
        )
    if pairs[-1][0] != "assistant" or not pairs[-1][1].strip():
        raise DataFormatError(
            path,
            line_no,
            "the last message must be a non-empty "
            "assistant answer (it is what the model learns to produce).",
        )
    history = tuple((("role", r), ("content", c)) for r, c in pairs[:-1])
    return Example("", pairs[-1][1], messages=history, origin=origin)


def read_csv(
    path: Path, input_column: str | None, label_column: str | None, template: str
) -> list[Example]:
    """Parse a CSV file with a header row into prompt/completion examples."""
    if "{input}" not in template:
        raise DataFormatError(path, None, f"template {template!r} has no {{input}} field.")
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = next(reader, None)
    if not header:
        raise DataFormatError(path, 1, "the file is empty; expected a header row.")
    header = [h.strip() for h in header]
    x_col = _column(header, input_column, CSV_INPUT_COLUMNS, "input", path)
    y_col = _column(header, label_column, CSV_LABEL_COLUMNS, "label", path)
    examples = []
    for row in reader:
        row_no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(
                path,
                row_no,
                f"{len(row)} fields but the header has "
                f"{len(header)}; quote fields that contain commas.",
            )
        x, y = row[x_col].strip(), row[y_col].strip()
        for value, column in ((x, header[x_col]), (y, header[y_col])):
            if not value:
                raise DataFormatError(path, row_no, f"empty {column!r} value.")
        examples.append(Example(template.format(input=x), " " + y, origin=f"{path}:{row_no}"))
    if not examples:
        raise DataFormatError(path, None, "the file has a header but no rows.")
    return examples


def _column(
    header: list[str], wanted: str | None, defaults: tuple[str, ...], role: str, path: Path
) -> int:
    if wanted is not None:
        if wanted not in header:
            raise DataFormatError(path, 1, f"no {role} column {wanted!r}; the header has {header}.")
        return header.index(wanted)
    for name in defaults:
        if name in header:
            return header.index(name)
    raise DataFormatError(
        path,
        1,
        f"no {role} column: name one of {list(defaults)} in the "
        f"header, or pass {role}_column= (header: {header}).",
    )


# Longest first: UTF-32-LE's mark starts with UTF-16-LE's.
