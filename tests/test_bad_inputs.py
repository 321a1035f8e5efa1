"""Every kind of bad input in the catalogue (``tests/bad_inputs.py``) gets one clear line,
exit code 2 (or a failed trial with its reason), and changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

from metapeft_optuna.cli import main

import optuna
import pytest
from bad_inputs import CATALOGUE, run_case

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


@pytest.fixture(autouse=True)
def _no_prior(monkeypatch):
    monkeypatch.setenv("METAPEFT_PRIOR", "none")  # a case that needs one sets its own


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
def test_a_bad_input_gets_one_clear_line_and_changes_nothing(case, tmp_path):
    outcome = run_case(case, tmp_path)
    assert not outcome.problem, f"{outcome.problem}: {outcome.line}"
    assert "Traceback" not in outcome.line
    assert not outcome.changed, f"files created or changed: {outcome.changed}"


def test_the_catalogue_has_fifty_kinds_and_the_docs_list_each():
    ids = [c.id for c in CATALOGUE]
    assert len(set(ids)) == len(ids) >= 50
    listed = set(re.findall(r"^\| (\w+) \| ([^|]+?) \|", DOC.read_text(), flags=re.M))
    listed.discard(("area", "kind"))  # the header
    assert listed == {(c.area, c.kind) for c in CATALOGUE}, (
        "docs/reliability.md is stale: python benchmarks/bad_inputs.py --write docs/reliability.md"
    )


def test_a_study_name_never_becomes_a_path(tmp_path, monkeypatch):
    """Names from the user are labels: adapters, artifacts and the plot are named by ids."""
    monkeypatch.setenv("METAPEFT_PRIOR", "none")
    work = tmp_path / "work"
    storage = f"sqlite:///{work / 's.db'}"
    argv = [
        "tune",
        "--task",
        "parity@64",
        "--model",
        "tiny",
        "--trials",
        "1",
        "--quiet",
        "--eval-examples",
        "8",
        "--storage",
        storage,
        "--adapters-dir",
        str(work / "a"),
    ]
    for name in ("../../escaped", str(tmp_path / "absolute")):
        assert main([*argv, "--study-name", name, "--sampler", "random"]) == 0
        assert len(optuna.load_study(study_name=name, storage=storage).trials) == 1
    outside = [p for p in tmp_path.rglob("*") if work not in p.parents and p != work]
    assert outside == []
