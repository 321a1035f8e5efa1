"""The sampler comparison script: its metric, and one small fast-mode run end to end."""

from __future__ import annotations

import csv
import dataclasses
import sys

from metapeft_optuna import schema
from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, SurrogateConfig
from metapeft_optuna.training import PEFTSearchSpace

import numpy as np
import optuna
import pytest
from conftest import import_benchmark, needs_torch
from synthetic_experience import TASKS, ran, synthetic_experiences


@pytest.fixture(scope="module")
def compare():
    return import_benchmark("compare_samplers")


def test_hypervolume_curve_is_monotone_and_reaches_one_on_the_best_front(compare):
    rng = np.random.default_rng(0)
    targets = np.column_stack(
        [rng.uniform(0.2, 0.9, 30), rng.uniform(5, 8, 30), rng.uniform(0, 4, 30)]
    )
    scale = compare.TaskScale(targets)
    points = scale(targets)
    assert points.min() >= 0 and points.max() <= 1
    best = compare.hypervolume(points[compare.pareto_mask(points)], compare.REFERENCE)
    curve = compare.hv_curve(points, best)
    assert np.all(np.diff(curve) >= -1e-12)
    assert curve[-1] == pytest.approx(1.0)
    assert 0 < curve[0] < 1


def small_system(others, space, cache):
    # The benchmark's full meta-model takes minutes; a small one shows the protocol.
    config = SurrogateConfig(members=2, joint_steps=100, reptile_iterations=5)
    buffer = ExperienceBuffer(e for group in others.values() for e in group)
    return MetaPEFTSystem(space, surrogate_config=config).fit(buffer)


def test_fast_mode_runs_leave_one_task_out_and_merges(compare, tmp_path, monkeypatch):
    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=12)).export_jsonl(experience)
    seen = []

    def recorded_system(others, space, cache):
        seen.append(sorted(others))
        return small_system(others, space, cache)

    monkeypatch.setattr(compare, "fitted_system", recorded_system)
    out = tmp_path / "out"
    command = ["compare_samplers.py", "--mode", "fast", "--experience", str(experience)]
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *command,
            *("--tasks", "iris", "--samplers", "meta", "tpe", "warmstart"),
            *("--seeds", "2", "--first-seed", "3", "--trials", "6", "--out", str(out)),
        ],
    )
    compare.main()

    assert len(seen) == 1 and len(seen[0]) == len(TASKS) - 1  # every task but the target
    with open(out / "compare_fast.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 * 6
    assert {r["seed"] for r in rows} == {"3", "4"}
    assert {r["task"] for r in rows} == {"iris"}
    for sampler in ("meta", "tpe", "warmstart"):
        curve = [
            float(r["normalised_hv"]) for r in rows if (r["sampler"], r["seed"]) == (sampler, "3")
        ]
        assert len(curve) == 6 and np.all(np.diff(curve) >= -1e-9) and curve[-1] > 0
    table = (out / "compare_fast.md").read_text()
    assert "| MetaPEFTSampler |" in table and "| TPE |" in table and "HV@5" in table
    assert (out / "compare_fast.png").stat().st_size > 0
    assert "iris" in (out / "compare_fast_oracle_fit.json").read_text()

    merged = tmp_path / "merged"
    summarise = ["--summarise", str(out / "compare_fast.csv"), "--out", str(merged)]
    monkeypatch.setattr(sys, "argv", [*command, *summarise])
    compare.main()
    assert (merged / "compare_fast.md").read_text() == table

    # A sampler re-measured later replaces its rows (same task, sampler, seed, trials).
    rerun = tmp_path / "rerun.csv"
    with open(rerun, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "normalised_hv": "0.0"} for r in rows if r["sampler"] == "tpe")
    summarise = ["--summarise", str(out / "compare_fast.csv"), str(rerun), "--out", str(merged)]
    monkeypatch.setattr(sys, "argv", [*command, *summarise])
    compare.main()
    with open(merged / "compare_fast.csv", newline="") as fh:
        remerged = list(csv.DictReader(fh))
    assert len(remerged) == len(rows)
    assert {float(r["normalised_hv"]) for r in remerged if r["sampler"] == "tpe"} == {0.0}
    assert [r for r in remerged if r["sampler"] != "tpe"] == [
        r for r in rows if r["sampler"] != "tpe"
    ]


def test_baselines_alone_fit_no_meta_model(compare, tmp_path, monkeypatch):
    # Only MetaPEFTSampler reads the meta-model; a run of baselines (e.g. GPSampler's
    # separate run) must not pay a minute's fit per task for it.
    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=12)).export_jsonl(experience)

    def no_fit(*_):
        raise AssertionError("fitted a meta-model for baselines only")

    monkeypatch.setattr(compare, "fitted_system", no_fit)
    out = tmp_path / "out"
    argv = ["compare_samplers.py", "--experience", str(experience), "--tasks", "iris"]
    options = ["--samplers", "tpe", "random", "--seeds", "1", "--trials", "3", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", [*argv, *options])
    compare.main()
    with open(out / "compare_fast.csv", newline="") as fh:
        assert {r["sampler"] for r in csv.DictReader(fh)} == {"tpe", "random"}

    alone = [*argv, "--samplers", "meta_learn_tpe"]  # its Optuna 4 run, merged later
    monkeypatch.setattr(sys, "argv", alone)
    with pytest.raises(SystemExit, match="meta_learn_tpe needs --optunahub-registry PATH"):
        compare.main()


def test_the_space_is_the_one_the_experience_was_recorded_in(compare, tmp_path, monkeypatch):
    experiences = synthetic_experiences(per_task=12)
    steps = compare.recorded_space(experiences).distributions()["steps"]
    assert steps == PEFTSearchSpace().distributions()["steps"]
    v2 = [ran(experiences[0], steps=150), *experiences[1:]]  # the v2 build's 10-200 steps
    assert compare.recorded_space(v2).contains(v2[0].hyperparameters)
    with pytest.raises(SystemExit, match="outside both"):
        compare.recorded_space([ran(experiences[0], steps=500)])

    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(experiences).export_jsonl(experience)
    argv = ["compare_samplers.py", "--experience", str(experience), "--tasks", "iris@64"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="no task iris@64 .* choose from .*iris"):
        compare.main()


def test_a_val_loss_task_is_compared_on_its_own_objectives(compare, tmp_path, monkeypatch):
    # A free-form task of v2 is scored by val_loss: its oracle, its normalisation (lower
    # is better), the target study's metric names and the report all follow it.
    def rescored(e):
        if e.task_name != "reverse_word@64":
            return e
        loss = 0.2 + 3.0 * (1.0 - e.performance_metrics["accuracy"])
        metrics = {**e.performance_metrics, "accuracy": 0.0, "val_loss": loss}
        return dataclasses.replace(e, performance_metrics=metrics, quality_objective="val_loss")

    experiences = [rescored(e) for e in synthetic_experiences(per_task=12)]
    target = [e for e in experiences if e.task_name == "reverse_word@64"]
    assert compare.task_objectives(target)[0] == "val_loss"
    assert compare.task_objectives([experiences[0]])[0] == "accuracy"  # v1: not recorded
    with pytest.raises(SystemExit, match="mixes quality objectives"):
        compare.task_objectives([*target, experiences[0]])
    losses = np.array([[0.5, 6.0, 1.0], [2.0, 6.0, 1.0]])
    scale = compare.TaskScale(np.log(losses), compare.task_objectives(target))
    assert scale(np.log(losses))[:, 0].tolist() == [0.0, 1.0]  # the lower loss is better

    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(experiences).export_jsonl(experience)
    studies = []
    monkeypatch.setattr(compare, "fitted_system", small_system)
    optimise = compare.optimise
    monkeypatch.setattr(
        compare, "optimise", lambda study, *a: studies.append(study) or optimise(study, *a)
    )
    out = tmp_path / "out"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *("compare_samplers.py", "--mode", "fast", "--experience", str(experience)),
            *("--tasks", "reverse_word@64", "--samplers", "meta", "tpe", "warmstart"),
            *("--seeds", "1", "--trials", "5", "--out", str(out)),
        ],
    )
    compare.main()
    assert all(s.metric_names == ["val_loss", "peak_memory_mb", "train_seconds"] for s in studies)
    assert all(s.directions[0] == optuna.study.StudyDirection.MINIMIZE for s in studies)
    with open(out / "compare_fast.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["quality"] for r in rows} == {"val_loss"}
    best = min(e.performance_metrics["val_loss"] for e in target)
    for r in rows:
        assert 0.2 <= float(r["best_known_quality"]) <= best + 0.5
        assert float(r["first_quality"]) > 0.0


def test_trials_to_match_reads_the_mean_curves(compare):
    by = {}
    for seed in range(2):
        for n, (meta, tpe) in enumerate([(0.5, 0.1), (0.7, 0.3), (0.8, 0.65)], start=1):
            by[("meta", n, "t", seed)] = [meta]
            by[("tpe", n, "t", seed)] = [tpe]
    assert "at trial 2 (0.67 of the trials)" in compare.trials_to_match(by, 3)
    for seed in range(2):
        for n, value in enumerate([0.1, 0.2, 0.7], start=1):
            by[("meta_gp", n, "t", seed)] = [value]
    assert "(GP hand-over) reaches TPE's HV@3 at trial 3" in compare.trials_to_match(
        by, 3, "meta_gp"
    )
    by[("tpe", 3, "t", 0)] = [0.99]
    assert "does not reach" in compare.trials_to_match(by, 3)


def live_argv(experience, out, storage, trials: int) -> list[str]:
    return [
        *("compare_samplers.py", "--mode", "live", "--model", "tiny"),
        *("--experience", str(experience), "--tasks", "parity@128", "--storage", storage),
        *("--samplers", "meta", "tpe", "--seeds", "1", "--trials", str(trials)),
        *("--out", str(out)),
    ]


def test_live_mode_learns_without_the_live_tasks_and_resumes(compare, tmp_path, monkeypatch):
    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=6)).export_jsonl(experience)
    seen = []

    def recorded_system(others, space, cache):
        seen.append({g[0].task_name for g in others.values()})
        return small_system(others, space, cache)

    monkeypatch.setattr(compare, "fitted_system", recorded_system)
    updates = []  # what the meta-model learns beyond its sources: nothing
    monkeypatch.setattr(compare.MetaPEFTSystem, "update", lambda self, b: updates.append(b))
    monkeypatch.setattr(compare, "build_running", lambda: False)
    monkeypatch.setattr(compare, "wait_while_held", lambda: None)  # not the repository build's hold
    monkeypatch.setattr(compare, "LIVE_BUDGET", compare.TrainingBudget(eval_examples=16))
    out, storage = tmp_path / "out", f"sqlite:///{tmp_path / 'live.db'}"
    monkeypatch.setattr(sys, "argv", live_argv(experience, out, storage, trials=1))
    compare.main()
    # parity@64 is the same task at another size: it is left out too.
    assert seen == [{t for t in TASKS if not t.startswith("parity@")}]
    # A run killed mid-trial leaves it RUNNING: the rerun fails it and runs it again.
    meta = optuna.load_study(study_name="live-parity@128-meta-0", storage=storage)
    meta.ask()
    monkeypatch.setattr(sys, "argv", live_argv(experience, out, storage, trials=2))
    compare.main()
    names = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert names == {"live-parity@128-meta-0": 3, "live-parity@128-tpe-0": 2}
    # The storage holds the TPE study of the same task: the meta study must not learn from it.
    assert updates == []
    interrupted = meta.trials[1]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs[schema.TRIAL_FAIL_REASON] == "interrupted build"
    # A finished trial whose timing other work distorted: failed by hand, its
    # configuration (the sampler's choice) is measured again and replaces it.
    contended = meta.trials[2]
    import_benchmark("build_meta_dataset").mark_contended(storage, [contended._trial_id])
    compare.main()
    redone = optuna.load_study(study_name="live-parity@128-meta-0", storage=storage).trials
    assert [t.state.name for t in redone] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert redone[3].params == contended.params
    with open(out / "compare_live.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["sampler"], r["quality"]) for r in rows} == {
        ("meta", "accuracy"),
        ("tpe", "accuracy"),
    }
    assert len(rows) == 2 * 2


def test_live_mode_refuses_to_run_beside_the_build(compare, tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "build_running", lambda: True)
    storage = f"sqlite:///{tmp_path / 'live.db'}"
    monkeypatch.setattr(sys, "argv", live_argv(tmp_path / "none.jsonl", tmp_path, storage, 1))
    with pytest.raises(SystemExit, match="build is running"):
        compare.main()


def test_live_mode_refuses_a_second_run_on_its_storage(compare, tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "build_running", lambda: False)
    storage = f"sqlite:///{tmp_path / 'live.db'}"
    monkeypatch.setattr(sys, "argv", live_argv(tmp_path / "none.jsonl", tmp_path, storage, 1))
    message = "another live run is using --storage"
    with compare.storage_lock(storage, "live run"), pytest.raises(SystemExit, match=message):
        compare.main()
    with compare.storage_lock(storage, "live run"):  # released when the first run ended
        pass


def test_paired_table_differences_task_means_with_standard_errors(compare):
    by = {}
    for task, gap in (("a", 0.1), ("b", 0.3)):
        for seed in range(2):
            by[("meta", 1, task, seed)] = [0.5 + gap + 0.1 * seed]
            by[("tpe", 1, task, seed)] = [0.5 + 0.1 * seed]
    table = compare.paired_table(by, ["meta", "tpe"], [1], "meta")
    # Differences 0.1 and 0.3: mean 0.2, standard error 0.1 over the two tasks.
    assert "| TPE | +0.200 ± 0.100 (2/2) |" in table
    assert "MetaPEFT" not in table.splitlines()[-1]
    # The GP hand-over is a sampler of its own, paired against the others from its side.
    for (sampler, n, task, seed), value in list(by.items()):
        if sampler == "meta":
            by["meta_gp", n, task, seed] = [value[0] + 0.1]
    table = compare.paired_table(by, ["meta", "tpe", "meta_gp"], [1], "meta_gp")
    assert table.startswith("| MetaPEFT (GP hand-over) - sampler")
    assert "| MetaPEFTSampler | +0.100 ± 0.000 (2/2) |" in table
    assert "| TPE | +0.300 ± 0.100 (2/2) |" in table


@needs_torch
def test_the_gp_hand_over_is_reported_as_a_sampler_of_its_own(compare, tmp_path, monkeypatch):
    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=12)).export_jsonl(experience)
    monkeypatch.setattr(compare, "fitted_system", small_system)
    out = tmp_path / "out"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *("compare_samplers.py", "--experience", str(experience), "--tasks", "iris"),
            *("--samplers", "meta", "tpe", "--fallback", "gp", "--seeds", "1", "--trials", "8"),
            *("--out", str(out)),
        ],
    )
    compare.main()
    with open(out / "compare_fast.csv", newline="") as fh:
        assert {r["sampler"] for r in csv.DictReader(fh)} == {"meta_gp", "tpe"}
    table = (out / "compare_fast.md").read_text()
    assert "| MetaPEFTSampler, GP hand-over |" in table
    assert "| MetaPEFT (GP hand-over) - sampler" in table
