"""mlx-lm's data conventions: data directories, format detection order, truncation, encodings."""

from __future__ import annotations

import codecs
import json
import re
import shutil
import subprocess
import warnings

from metapeft_optuna import DataFormatError
from metapeft_optuna.tasks import Example, load_task, load_task_file
from metapeft_optuna.training.batching import (
    EncodedExample,
    TruncationWarning,
    encode_example,
    encode_task_examples,
    eos_id,
)

import pytest


def jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def completions(n, start=0, label=lambda i: " yes" if i % 2 else " no"):
    return [{"prompt": f"Q{i}:", "completion": label(i)} for i in range(start, start + n)]


# --- mlx-lm data directories ---------------------------------------------------------


def test_directory_with_three_files_uses_them_as_given(tmp_path):
    data = tmp_path / "sentiment"
    data.mkdir()
    (data / "train.jsonl").write_text(jsonl(completions(20)))
    (data / "valid.jsonl").write_text(jsonl(completions(4, start=100)))
    (data / "test.jsonl").write_text(jsonl(completions(6, start=200)))
    task = load_task(data)
    assert task.name == "sentiment" and task.source == str(data)
    assert [e.prompt for e in task.examples] == [f"Q{i}:" for i in range(20)]
    train, validation, test = task.splits(seed=3)
    assert train == task.examples  # nothing carved: both held-out splits are given
    assert [e.prompt for e in validation] == [f"Q{i}:" for i in range(100, 104)]
    assert [e.prompt for e in test] == [f"Q{i}:" for i in range(200, 206)]
    assert task.task_type == "classification" and task.labels == (" no", " yes")
    assert test[2].origin == f"{data / 'test.jsonl'}:3"
    assert load_task_file(data, name="custom").name == "custom"


def test_directory_without_valid_and_test_carves_them_from_train(tmp_path):
    (tmp_path / "train.jsonl").write_text(jsonl(completions(20)))
    task = load_task(tmp_path)
    assert task.validation == () and task.test == ()
    train, validation, test = task.splits()
    assert (len(train), len(validation), len(test)) == (16, 2, 2)
    assert set(train + validation + test) == set(task.examples)


def test_directory_with_only_a_test_file_carves_validation(tmp_path):
    (tmp_path / "train.jsonl").write_text(jsonl(completions(20)))
    (tmp_path / "test.jsonl").write_text(jsonl(completions(3, start=50)))
    train, validation, test = load_task(tmp_path).splits()
    assert [e.prompt for e in test] == ["Q50:", "Q51:", "Q52:"]
    assert (len(train), len(validation)) == (18, 2)


def test_directory_files_must_share_one_format(tmp_path):
    (tmp_path / "train.jsonl").write_text(jsonl(completions(10)))
    (tmp_path / "valid.jsonl").write_text("\n" + jsonl([{"text": f"t{i}"} for i in range(3)]))
    with pytest.raises(DataFormatError) as info:
        load_task(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'valid.jsonl'}:2: ")
    assert "'text' format but train.jsonl is in 'completions'" in message
    assert "use one format for all files" in message


def test_directory_without_train_file_names_the_expected_files(tmp_path):
    (tmp_path / "valid.jsonl").write_text(jsonl(completions(10)))
    with pytest.raises(DataFormatError) as info:
        load_task(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: no train.jsonl")
    assert "train.jsonl (required), valid.jsonl and test.jsonl (optional)" in message


def test_single_file_keeps_its_deterministic_split(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(jsonl(completions(20)))
    task = load_task(path)
    assert task.validation == () and task.splits(seed=1) == load_task(path).splits(seed=1)
    assert task.examples[6].origin == f"{path}:7"


# --- format detection in mlx-lm's order ----------------------------------------------


def test_prompt_completion_wins_over_text_as_in_mlx_lm(tmp_path):
    records = [
        {"text": f"whole text {i}", "prompt": f"Q{i}:", "completion": f" answer {i}"}
        for i in range(8)
    ]
    path = tmp_path / "both.jsonl"
    path.write_text(jsonl(records))
    task = load_task(path)
    assert task.task_type == "generation"  # not language modelling on "text"
    assert (task.examples[0].prompt, task.examples[0].completion) == ("Q0:", " answer 0")


def test_messages_win_over_text_as_in_mlx_lm(tmp_path):
    records = [
        {
            "text": "ignored",
            "messages": [
                {"role": "user", "content": f"{i}+1?"},
                {"role": "assistant", "content": str(i + 1)},
            ],
        }
        for i in range(8)
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text(jsonl(records))
    example = load_task(path).examples[0]
    assert example.messages == ((("role", "user"), ("content", "0+1?")),)
    assert example.completion == "1"


def test_prompt_completion_wins_over_messages(tmp_path):
    record = {"prompt": "Q:", "completion": " A", "messages": "not a list"}
    path = tmp_path / "mixed.jsonl"
    path.write_text(jsonl([record, {**record, "completion": " B"}] * 4))
    assert load_task(path).examples[0].completion == " A"


def test_one_format_per_file_still_holds(tmp_path):
    path = tmp_path / "mixed.jsonl"
    both = {"text": "x", "prompt": "Q:", "completion": " A"}
    path.write_text(jsonl([both, both, {"text": "plain"}]))
    with pytest.raises(DataFormatError, match=r"mixed.jsonl:3: line is in the 'text' format"):
        load_task(path)


# --- truncation like mlx-lm ----------------------------------------------------------


def long_examples(tmp_path, tiny, prompt_tokens=2, completion_tokens=627):
    """200 short examples; the 7th needs ``prompt_tokens + completion_tokens`` tokens."""
    records = completions(200)
    records[6] = {"prompt": "Q" * prompt_tokens, "completion": "a" * completion_tokens}
    path = tmp_path / "data.jsonl"
    path.write_text(jsonl(records))
    return path, load_task(path).examples


def test_long_example_is_truncated_to_the_context_with_one_warning(tmp_path, tiny):
    path, examples = long_examples(tmp_path, tiny)
    whole = encode_example(examples[6], tiny.tokenizer)
    assert whole.length == 629  # byte-level tokens: 2 + 627 + EOS, minus the last
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoded = encode_task_examples(examples, tiny.tokenizer, max_length=512)
    assert len(caught) == 1 and issubclass(caught[0].category, TruncationWarning)
    message = str(caught[0].message)
    assert message.startswith(f"{path}:7: example is 629 tokens; truncated to max_length=512")
    assert "1 of 200 examples truncated" in message and "as mlx-lm does" in message
    assert len(encoded) == 200 and max(e.length for e in encoded) == 512
    cut = encoded[6]
    assert cut.length == 512 and cut.prompt == whole.prompt
    assert cut.answer == whole.answer[: len(cut.answer)]  # the first tokens, no EOS
    assert cut.answer[-1] != eos_id(tiny.tokenizer)
    assert encoded[5].answer[-1] == eos_id(tiny.tokenizer)  # uncut answers keep EOS
    assert encoded[5] == encode_example(examples[5], tiny.tokenizer)


def test_example_whose_prompt_fills_the_context_is_dropped(tmp_path, tiny):
    path, examples = long_examples(tmp_path, tiny, prompt_tokens=513, completion_tokens=5)
    with pytest.warns(TruncationWarning) as caught:
        encoded = encode_task_examples(examples, tiny.tokenizer, max_length=512)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{path}:7: example is 518 tokens and its prompt alone fills")
    assert "dropped" in message and "1 of 200 examples dropped" in message
    assert len(encoded) == 199 and examples[6].prompt not in {e.prompt for e in encoded}
    assert encode_example(examples[6], tiny.tokenizer, max_length=512) is None


def test_prompt_of_exactly_max_length_keeps_one_answer_token(tiny):
    encoded = encode_example(Example("Q" * 8, "abc"), tiny.tokenizer, max_length=8)
    assert encoded is not None and encoded.length == 8 and len(encoded.answer) == 1


def test_plain_text_keeps_its_first_tokens(tiny):
    whole = encode_example(Example("", "x" * 40), tiny.tokenizer)
    cut = encode_example(Example("", "x" * 40), tiny.tokenizer, max_length=10)
    assert cut == EncodedExample(whole.prompt, whole.answer[:10]) and cut.length == 10


def test_one_warning_summarises_many_long_examples(tiny):
    examples = [Example("Q:", "a" * n) for n in (3, 30, 3, 40, 50, 60)]
    examples.append(Example("P" * 25, "b"))
    with pytest.warns(TruncationWarning) as caught:
        encoded = encode_task_examples(examples, tiny.tokenizer, max_length=20)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("example 2: example is 32 tokens; truncated")
    assert "5 of 7 examples too long (4 truncated, 1 dropped)" in message
    assert "(also example 4, example 5, ...)" in message and "the longest is 62 tokens" in message
    assert len(encoded) == 6 and all(e.length <= 20 for e in encoded)


def test_no_limit_and_short_examples_do_not_warn(tiny):
    examples = [Example("Q:", " a")] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encode_task_examples(examples, tiny.tokenizer, max_length=512) == (
            encode_task_examples(examples, tiny.tokenizer)
        )


# --- encodings -----------------------------------------------------------------------

LABELS = ("café", "thé", "crème brûlée")
CSV_TEXT = "input,label\n" + "".join(f"order {i},{LABELS[i % 3]}\n" for i in range(9))
JSONL_TEXT = jsonl(
    {"prompt": f"Où est le café {i} ?", "completion": f" très {LABELS[i % 3]}"} for i in range(9)
)


def conversion(message: str) -> tuple[str, str]:
    """The suggested source encoding and the whole iconv command in an error message."""
    found = re.search(r"convert it with: (iconv -f (\S+) -t UTF-8 .*)$", message)
    assert found, message
    return found[2], found[1]


def test_windows_1252_csv_names_the_encoding_and_the_fix(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(CSV_TEXT.encode("cp1252"))
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: not UTF-8 (looks like Windows-1252: byte 0xe9)")
    encoding, command = conversion(message)
    assert encoding == "WINDOWS-1252"
    assert command.endswith(f"{path} > {tmp_path / 'data.utf8.csv'}")
    if shutil.which("iconv"):  # the suggested command really fixes the file
        subprocess.run(command, shell=True, check=True)
        task = load_task(tmp_path / "data.utf8.csv")
        assert {e.completion for e in task.examples} == {" " + label for label in LABELS}


def test_latin_1_jsonl_suggests_an_encoding_that_decodes_it(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(JSONL_TEXT.encode("latin-1"))
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    assert str(info.value).startswith(f"{path}:1: not UTF-8 (looks like ")
    encoding, _ = conversion(str(info.value))
    assert path.read_bytes().decode(codecs.lookup(encoding).name) == JSONL_TEXT


def test_other_code_pages_are_not_mistaken_for_windows_1252(tmp_path):
    text = "input,label\n" + "".join(f"Привет мир {i},хорошо\n" for i in range(8))
    path = tmp_path / "ru.csv"
    path.write_bytes(text.encode("cp1251"))
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    assert "looks like Windows-1251" in str(info.value)
    assert path.read_bytes().decode(conversion(str(info.value))[0]) == text


def test_damaged_byte_names_its_line(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = JSONL_TEXT.encode().split(b"\n")
    lines[4] = lines[4].replace("Où".encode(), b"O\xff")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    message = str(info.value)
    assert message.startswith(f"{path}:5: not UTF-8: byte 0xff cannot be decoded")
    assert "the rest of the file is UTF-8" in message  # so no whole-file conversion


def test_invalid_byte_in_an_ascii_file_names_its_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"input,label\nx,y\nx,y\nx,y\nx,\xff\n")
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    assert str(info.value).startswith(f"{path}:5: not UTF-8 (")
    assert "byte 0xff" in str(info.value) and "iconv -f" in str(info.value)


BOMS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


@pytest.mark.parametrize("suffix, text", [(".csv", CSV_TEXT), (".jsonl", JSONL_TEXT)])
@pytest.mark.parametrize("encoding", sorted(BOMS))
def test_byte_order_marks_are_decoded_and_removed(tmp_path, suffix, text, encoding):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(BOMS[encoding] + text.encode(encoding))
    reference = tmp_path / f"plain{suffix}"
    reference.write_text(text, encoding="utf-8")
    task, expected = load_task(path), load_task(reference)
    assert [(e.prompt, e.completion) for e in task.examples] == [
        (e.prompt, e.completion) for e in expected.examples
    ]
    assert "\ufeff" not in task.examples[0].prompt


def test_utf8_bom_does_not_reach_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"input,label\n" + b"x,y\nx,n\n" * 4)
    assert load_task(path).examples[0].completion == " y"  # "input" found despite the BOM


@pytest.mark.parametrize(
    "text", [CSV_TEXT, "input,label\n" + "x,y\n" * 8], ids=["accents", "ascii"]
)
def test_utf16_without_bom_is_named(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(DataFormatError) as info:
        load_task(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "looks like UTF-16LE without a byte-order mark" in message
    assert conversion(message)[0] == "UTF-16LE"


def test_damaged_utf16_with_bom(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(codecs.BOM_UTF16_LE + JSONL_TEXT.encode("utf-16-le") + b"\x00")
    with pytest.raises(DataFormatError, match=r"invalid UTF-16-LE .* the file is damaged"):
        load_task(path)


def test_xlsx_saved_as_csv(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb5U\x8a")
    with pytest.raises(DataFormatError, match="ZIP archive .* save it as CSV UTF-8"):
        load_task(path)


def test_existing_errors_still_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + b'{"prompt": "a", "completion": " b"}\n{oops\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: invalid JSON"):
        load_task(path)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_bytes("input,label\nx,y\nx,y,z\n".encode("utf-16"))
    with pytest.raises(DataFormatError, match=r"bad.csv:3: 3 fields but the header has 2"):
        load_task(csv_path)
