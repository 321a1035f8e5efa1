"""benchmarks/second_study.py: a user's second study in a storage, with real fine-tunes."""

from __future__ import annotations

import argparse
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


def small_prior(second, path, without=()):
    """A small prior (the benchmark trains the full one with the CLI)."""
    buffer = ExperienceBuffer(synthetic_experiences(per_task=6))
    config = SurrogateConfig(members=2, joint_steps=100, reptile_iterations=5)
    system = MetaPEFTSystem(PEFTSearchSpace(), surrogate_config=config)
    system.fit(second.without_tasks(buffer, list(without))).save(path)
    return path


def run(second, monkeypatch, prior, storages, out, seeds=2):
    monkeypatch.setattr(second, "build_running", lambda: False)
    monkeypatch.setattr(second, "wait_while_held", lambda: None)  # not the repository's hold
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *("second_study.py", "--first", "parity@64", "--second", "reverse_word@64"),
            *("--model", "tiny", "--prior", str(prior), "--seeds", str(seeds)),
            *("--first-trials", "1", "--trials", "2", "--eval-examples", "8"),
            *("--storage-dir", str(storages), "--out", str(out)),
        ],
    )
    second.main()


def test_the_second_study_learns_from_the_first_and_alone_does_not(second, tmp_path, monkeypatch):
    prior = small_prior(second, tmp_path / "prior", without=["parity@64", "reverse_word@64"])
    storages, out = tmp_path / "studies", tmp_path / "out"
    run(second, monkeypatch, prior, storages, out)
    for seed in range(2):
        mine = f"sqlite:///{storages / f'seed{seed}.db'}"
        alone = f"sqlite:///{storages / f'alone{seed}.db'}"
        assert {s.study_name for s in optuna.get_all_study_summaries(mine)} == {
            "parity@64",
            "reverse_word@64",
        }
        assert [s.study_name for s in optuna.get_all_study_summaries(alone)] == ["reverse_word@64"]
        # Alone, the study knows the prior's 6 tasks; after the first, that one too.
        assert tasks_known(storages / f"alone{seed}.db", "reverse_word@64") == 6
        assert tasks_known(storages / f"seed{seed}.db", "reverse_word@64") == 7
    summary = (out / "second_study_tiny.md").read_text()
    assert "| 2 |" in summary and "difference (paired)" in summary
    assert len((out / "second_study_tiny.csv").read_text().splitlines()) == 1 + 2 * 2 * 2


def test_a_folder_or_prior_that_would_leak_is_refused(second, tmp_path, monkeypatch):
    storages = tmp_path / "studies"
    storages.mkdir()
    optuna.create_study(study_name="iris", storage=f"sqlite:///{storages / 'alone0.db'}")
    with pytest.raises(SystemExit, match=r"holds the studies \['iris'\]"):
        run(second, monkeypatch, tmp_path / "no-prior", storages, tmp_path / "out", seeds=1)
    knowing = small_prior(second, tmp_path / "knowing")  # it has seen parity and reverse_word
    with pytest.raises(SystemExit, match=r"the prior knows \['parity', 'reverse_word'\]"):
        run(second, monkeypatch, knowing, tmp_path / "other", tmp_path / "out", seeds=1)


def test_an_arm_without_a_completed_trial_fails_the_benchmark(second, tmp_path):
    names = ["val_loss", "peak_memory_mb", "train_seconds"]
    for arm, state in (("second", "COMPLETE"), ("alone", "FAIL")):
        study = optuna.create_study(
            study_name="reverse_word@64",
            storage=f"sqlite:///{second.storage(tmp_path, arm, 0)}",
            directions=["minimize"] * 3,
        )
        study.set_metric_names(names)
        values = [1.0, 10.0, 2.0] if state == "COMPLETE" else None
        trial = optuna.trial.create_trial(
            state=optuna.trial.TrialState[state],
            values=values,
            params={},
            distributions={},
            user_attrs={} if values else {schema.TRIAL_FAIL_REASON: "NaN loss"},
        )
        study.add_trial(trial)
    args = argparse.Namespace(second="reverse_word@64", seeds=1, trials=1)
    with pytest.raises(SystemExit, match=r"no completed trial in \(arm, seed\) \[\('alone', 0\)\]"):
        second.results(args, tmp_path)
