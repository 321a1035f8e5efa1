"""benchmarks/second_study.py: a user's second study in a storage, with real fine-tunes."""

from __future__ import annotations

import re
import sys

from metapeft_optuna import schema
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, SurrogateConfig
from metapeft_optuna.training import PEFTSearchSpace

import optuna
import pytest
from conftest import import_benchmark
from synthetic_experience import synthetic_experiences


@pytest.fixture(scope="module")
def second():
    return import_benchmark("second_study")


def test_the_prior_leaves_out_both_tasks_at_every_size(second):
    buffer = ExperienceBuffer(synthetic_experiences(per_task=2))
    kept = {e.task_name for e in second.without_tasks(buffer, ["parity@256", "reverse_word@64"])}
    assert kept and not kept & {"parity@64", "reverse_word@64"}
    assert "iris" in kept


def tasks_known(storage, task: str) -> int:
    """How many source tasks the study's recommendation says it learned from."""
    study = optuna.load_study(study_name=task, storage=f"sqlite:///{storage}")
    reasoning = study.user_attrs[schema.STUDY_RECOMMENDATION]["reasoning"]
    return int(re.search(r"experiences on (\d+) tasks", reasoning).group(1))


def test_the_second_study_learns_from_the_first_and_alone_does_not(second, tmp_path, monkeypatch):
    # A small prior without either task (the benchmark trains the full one with the CLI).
    buffer = second.without_tasks(
        ExperienceBuffer(synthetic_experiences(per_task=6)), ["parity@64", "reverse_word@64"]
    )
    config = SurrogateConfig(members=2, joint_steps=100, reptile_iterations=5)
    prior = tmp_path / "prior"
    MetaPEFTSystem(PEFTSearchSpace(), surrogate_config=config).fit(buffer).save(prior)
    monkeypatch.setattr(second, "build_running", lambda: False)
    monkeypatch.setattr(second, "wait_while_held", lambda: None)  # not the repository's hold
    storages, out = tmp_path / "studies", tmp_path / "out"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *("second_study.py", "--first", "parity@64", "--second", "reverse_word@64"),
            *("--model", "tiny", "--prior", str(prior), "--seeds", "2", "--first-trials", "1"),
            *("--trials", "2", "--eval-examples", "8", "--storage-dir", str(storages)),
            *("--out", str(out)),
        ],
    )
    second.main()
    for seed in range(2):
        mine = f"sqlite:///{storages / f'seed{seed}.db'}"
        alone = f"sqlite:///{storages / f'alone{seed}.db'}"
        assert {s.study_name for s in optuna.get_all_study_summaries(mine)} == {
            "parity@64",
            "reverse_word@64",
        }
        assert [s.study_name for s in optuna.get_all_study_summaries(alone)] == ["reverse_word@64"]
        # The storage's first study is one more source task for the second.
        known = tasks_known(storages / f"seed{seed}.db", "reverse_word@64")
        assert known == tasks_known(storages / f"alone{seed}.db", "reverse_word@64") + 1
    summary = (out / "second_study_tiny.md").read_text()
    assert "| 2 |" in summary and "difference (paired)" in summary
    assert len((out / "second_study_tiny.csv").read_text().splitlines()) == 1 + 2 * 2 * 2
