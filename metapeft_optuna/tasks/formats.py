"""Read task data from JSONL (mlx-lm's three formats) and CSV, with file:line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..errors import DataFormatError
from .task import DOMAINS, TASK_TYPES, Example, Task

JSONL_FORMATS = {
    "text": ("text",),
    "completions": ("prompt", "completion"),
    "chat": ("messages",),
}
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
    """Load a task from a ``.jsonl`` or ``.csv`` file.

    JSONL lines use one of mlx-lm's formats: ``{"text"}``, ``{"prompt", "completion"}``
    or ``{"messages": [{"role", "content"}, ...]}`` (the last message must be the
    assistant's answer). CSV files need a header with an input and a label column.

    Args:
        path: The data file.
        task_type: Override the inferred type (see :data:`TASK_TYPES`). Inferred as
            ``language_modeling`` for text, ``classification`` when answers come from a
            small set, else ``generation``.
        domain: One of :data:`DOMAINS` (a meta-feature).
        name: Task name (default: the file stem).
        input_column: CSV input column (default: the first of
            :data:`CSV_INPUT_COLUMNS` present).
        label_column: CSV label column (default: the first of :data:`CSV_LABEL_COLUMNS`).
        template: CSV prompt template with an ``{input}`` field; the answer follows it
            after one space.

    Raises:
        DataFormatError: Message starts with ``file:line:`` and says how to fix it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found.")
    if task_type is not None and task_type not in TASK_TYPES:
        raise DataFormatError(path, None, f"task_type={task_type!r}; use one of {TASK_TYPES}.")
    if domain not in DOMAINS:
        raise DataFormatError(path, None, f"domain={domain!r}; use one of {DOMAINS}.")
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
            "(text, prompt/completion or messages) or .csv.",
        )
    if task_type is None:
        task_type = "language_modeling" if fmt == "text" else infer_task_type(examples)
    if task_type == "language_modeling" and fmt != "text":
        raise DataFormatError(path, None, 'language_modeling needs {"text"} lines.')
    return Task(name or path.stem, tuple(examples), task_type, domain, source=str(path))


def infer_task_type(examples: list[Example]) -> str:
    """``classification`` when the answers form a small, repeated set; else ``generation``."""
    distinct = {e.completion for e in examples}
    small = 2 <= len(distinct) <= 32 and len(distinct) * 3 <= len(examples)
    return "classification" if small else "generation"


def read_jsonl(path: Path) -> tuple[list[Example], str]:
    """Parse a JSONL file; returns the examples and the format name."""
    examples: list[Example] = []
    fmt: str | None = None
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
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
                fmt = line_fmt
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
    return examples, fmt


def _jsonl_format(record: dict[str, Any], path: Path, line_no: int) -> str:
    for fmt, keys in JSONL_FORMATS.items():
        if all(k in record for k in keys):
            return fmt
    raise DataFormatError(
        path,
        line_no,
        f"keys {sorted(record)} match no format; expected "
        '{"text"}, {"prompt", "completion"} or {"messages"}.',
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
    if fmt == "text":
        return Example("", _string(record["text"], '"text"', path, line_no))
    if fmt == "completions":
        prompt = _string(record["prompt"], '"prompt"', path, line_no, allow_empty=True)
        return Example(prompt, _string(record["completion"], '"completion"', path, line_no))
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
    return Example("", pairs[-1][1], messages=history)


def read_csv(
    path: Path, input_column: str | None, label_column: str | None, template: str
) -> list[Example]:
    """Parse a CSV file with a header row into prompt/completion examples."""
    if "{input}" not in template:
        raise DataFormatError(path, None, f"template {template!r} has no {{input}} field.")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
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
            examples.append(Example(template.format(input=x), " " + y))
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
