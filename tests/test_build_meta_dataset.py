"""The meta-dataset build's bookkeeping (which finished trials count, which are redone) and
what its recorded curves say of the first steps' overhead."""

from __future__ import annotations

import sys
from pathlib import Path

from metapeft_optuna import schema

import optuna
import pytest
from conftest import import_benchmark
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

V1_EXPORT = Path(__file__).parents[1] / "studies" / "meta_dataset.jsonl"


@pytest.fixture(scope="module")
def build():
    return import_benchmark("build_meta_dataset")


def test_contended_trials_are_failed_and_redone_atomically(build, tmp_path):
    storage = f"sqlite:///{tmp_path / 'v2.db'}"
    study = optuna.create_study(storage=storage, study_name="v2-parity@256")
    for steps in (10, 20):
        study.add_trial(
            optuna.trial.create_trial(
                params={"steps": steps},
                distributions={"steps": IntDistribution(10, 200, log=True)},
                value=0.5,
            )
        )
    first, second = study.get_trials()

    with pytest.raises(SystemExit, match="no trial with trial_id 999"):
        build.mark_contended(storage, [first._trial_id, 999])
    assert len(build.counted(study)) == 2  # nothing half-written

    build.mark_contended(storage, [first._trial_id])
    study = optuna.load_study(study_name="v2-parity@256", storage=storage)
    redone = study.get_trials()[0]
    assert redone.state == TrialState.FAIL and redone.values is None
    assert redone.user_attrs[schema.TRIAL_FAIL_REASON] == build.CONTENDED
    assert [t.number for t in build.counted(study)] == [second.number]
    assert [t.number for t in build.pending_redo(study)] == [first.number]
    with pytest.raises(SystemExit, match="not a SQLite storage"):
        build.mark_contended("postgresql://localhost/x", [1])


def test_core_builds_only_the_core_tasks(build, monkeypatch, tmp_path):
    ran = {}
    monkeypatch.setattr(build, "build", lambda storage, tasks, *_: ran.update(tasks=tasks))
    monkeypatch.setattr(build, "report", lambda storage: "")
    storage = f"sqlite:///{tmp_path / 'v2.db'}"
    monkeypatch.setattr(sys, "argv", ["build_meta_dataset.py", "--storage", storage, "--core"])
    build.main()
    assert sorted(spec.split("@")[0] for spec in ran["tasks"]) == sorted(build.CORE)


def test_a_second_build_on_the_storage_exits_with_one_line(build, monkeypatch, tmp_path):
    monkeypatch.setattr(build, "build", lambda *_: pytest.fail("a second build ran"))
    storage = f"sqlite:///{tmp_path / 'v2.db'}"
    monkeypatch.setattr(sys, "argv", ["build_meta_dataset.py", "--storage", storage, "--core"])
    # The same lock a live comparison on that storage takes.
    with build.storage_lock(storage, "live run"), pytest.raises(SystemExit) as stop:
        build.main()
    assert str(stop.value).startswith(f"another live run is using --storage {storage}")


def test_first_step_overhead_reads_the_recorded_curves(monkeypatch, capsys):
    overhead = import_benchmark("first_step_overhead")
    # Steady at 2 s a step from the second point on: the first 5 steps took 4 s extra.
    curve = [{"step": s, "train_seconds": t} for s, t in ((5, 14.0), (10, 24.0), (15, 34.0))]
    assert overhead.overhead_seconds(curve) == pytest.approx(4.0)
    assert overhead.overhead_seconds(curve[:2]) is None
    assert overhead.length_group(30) == overhead.LENGTHS[0][1]
    assert overhead.length_group(200) == "over 80 steps"
    monkeypatch.setattr(sys, "argv", ["first_step_overhead.py", "--experience", str(V1_EXPORT)])
    overhead.main()
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| all | 520 |")
    assert any(row.startswith("| lora |") for row in rows)


def test_a_complete_task_short_of_a_method_gets_that_method(build):
    methods = ("lora", "dora", "prompt_tuning")
    trials = [
        optuna.trial.create_trial(
            params={"method": method},
            distributions={"method": optuna.distributions.CategoricalDistribution(methods)},
            value=0.5,
        )
        for method, n in (("lora", 8), ("dora", 7), ("prompt_tuning", 5))
        for _ in range(n)
    ]
    assert build.short_method(trials, methods) == "prompt_tuning"
    assert build.short_method(trials, ("lora", "dora")) is None
    assert build.short_method(trials, (*methods, "p_tuning")) == "p_tuning"  # none yet
