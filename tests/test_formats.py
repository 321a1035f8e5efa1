"""Data files: mlx-lm's JSONL formats and CSV, and file:line errors for bad input."""

from __future__ import annotations

import json

from metapeft_optuna import DataFormatError
from metapeft_optuna.tasks import load_task

import pytest


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_prompt_completion_jsonl_is_classification(tmp_path):
    path = write_jsonl(
        tmp_path / "sent.jsonl",
        [{"prompt": f"Review {i}:", "completion": " good" if i % 2 else " bad"} for i in range(30)],
    )
    task = load_task(path, domain="sentiment")
    assert task.task_type == "classification" and task.labels == (" bad", " good")
    assert task.name == "sent" and task.domain == "sentiment"


def test_text_jsonl_is_language_modeling(tmp_path):
    path = write_jsonl(tmp_path / "lm.jsonl", [{"text": f"line {i}"} for i in range(10)])
    task = load_task(path)
    assert task.task_type == "language_modeling"
    assert task.examples[0].prompt == "" and task.examples[0].completion == "line 0"


def test_chat_jsonl_renders_with_the_template(tmp_path, tiny):
    records = [
        {
            "messages": [
                {"role": "user", "content": f"{i}+1?"},
                {"role": "assistant", "content": str(i + 1)},
            ]
        }
        for i in range(12)
    ]
    task = load_task(write_jsonl(tmp_path / "chat.jsonl", records))
    assert task.task_type == "generation"
    prompt = task.examples[0].render_prompt(tiny.tokenizer)
    assert prompt == "<|im_start|>user\n0+1?<|im_end|>\n<|im_start|>assistant\n"
    assert task.examples[0].completion == "1"


def test_csv_with_named_columns(tmp_path):
    path = tmp_path / "data.csv"
    rows = "\n".join(f'"text {i}, with comma",{"yes" if i % 3 else "no"}' for i in range(12))
    path.write_text("sentence,target\n" + rows + "\n")
    task = load_task(path)
    assert task.examples[0].prompt == "text 0, with comma\nAnswer:"
    assert task.examples[0].completion == " no"
    custom = load_task(
        path,
        input_column="sentence",
        label_column="target",
        template="Q: {input}\nA:",
        task_type="generation",
    )
    assert custom.examples[1].prompt == "Q: text 1, with comma\nA:"
    assert custom.task_type == "generation"


GOOD = '{"prompt": "a", "completion": " b"}\n'

BAD_JSONL = [
    ("not json", GOOD + "{oops\n", 2, "invalid JSON"),
    ("not an object", GOOD + "[1, 2]\n", 2, "must be a JSON object, got list"),
    ("unknown keys", GOOD + '{"question": "a", "answer": "b"}\n', 2, "match no format"),
    (
        "wrong type",
        GOOD + '{"prompt": "a", "completion": 3}\n',
        2,
        '"completion" must be a string, got int',
    ),
    (
        "empty completion",
        GOOD + '{"prompt": "a", "completion": "  "}\n',
        2,
        '"completion" is empty',
    ),
    ("mixed formats", GOOD + '{"text": "hello"}\n', 2, "use one format per file"),
    (
        "bad role",
        '{"messages": [{"role": "robot", "content": "x"}, '
        '{"role": "assistant", "content": "y"}]}\n',
        1,
        "has role 'robot'",
    ),
    (
        "no assistant answer",
        '{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}\n',
        1,
        "last message must be a non-empty assistant",
    ),
    (
        "message without content",
        '{"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}\n',
        1,
        'messages[0] needs "role" and "content"',
    ),
]


@pytest.mark.parametrize("kind, text, line, message", BAD_JSONL, ids=[b[0] for b in BAD_JSONL])
def test_bad_jsonl_names_file_and_line(tmp_path, kind, text, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)
    assert info.value.line == line


BAD_CSV = [
    ("empty file", "", 1, "the file is empty"),
    ("missing label column", "input,other\nx,y\n", 1, "no label column"),
    ("ragged row", "input,label\nx,y\nx,y,z\n", 3, "3 fields but the header has 2"),
    ("empty label", "input,label\nx,y\nx,\n", 3, "empty 'label' value"),
]


@pytest.mark.parametrize("kind, text, line, message", BAD_CSV, ids=[b[0] for b in BAD_CSV])
def test_bad_csv_names_file_and_row(tmp_path, kind, text, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and message in str(info.value)


def test_whole_file_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataFormatError, match="has no examples"):
        load_task(tmp_path / "empty.jsonl")
    with pytest.raises(DataFormatError, match="file not found"):
        load_task(tmp_path / "absent.jsonl")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataFormatError, match="unsupported file type '.txt'"):
        load_task(tmp_path / "data.txt")
    few = write_jsonl(tmp_path / "few.jsonl", [{"prompt": "a", "completion": " b"}] * 3)
    with pytest.raises(DataFormatError, match="needs at least 6"):
        load_task(few)
    (tmp_path / "h.csv").write_text("input,label\n")
    with pytest.raises(DataFormatError, match="header but no rows"):
        load_task(tmp_path / "h.csv")
    with pytest.raises(DataFormatError, match="no input column 'nope'"):
        load_task(write_csv(tmp_path), input_column="nope")


def write_csv(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("input,label\n" + "".join(f"x{i},y\n" for i in range(8)))
    return path
