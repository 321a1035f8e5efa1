"""The study throughput benchmark's command line (its runs need PyTorch and minutes)."""

from __future__ import annotations

import sys

import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def throughput():
    return import_benchmark("study_throughput")


def test_arrangements_are_workers_by_threads(throughput):
    assert throughput.arrangement("2x1") == (2, 1)
    assert throughput.arrangement("1X2") == (1, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [("2", "not WORKERSxTHREADS"), ("2x1x1", "not WORKERSxTHREADS"), ("0x2", "at least 1")],
)
def test_a_bad_arrangement_is_one_line_naming_it(throughput, monkeypatch, capsys, text, message):
    monkeypatch.setattr(sys, "argv", ["study_throughput.py", "--arrangements", text])
    with pytest.raises(SystemExit) as raised:
        throughput.main()
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
