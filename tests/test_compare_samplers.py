"""The sampler comparison script: its metric, and one small fast-mode run end to end."""

from __future__ import annotations

import csv
import sys

from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, SurrogateConfig

import numpy as np
import pytest
from conftest import import_benchmark
from synthetic_experience import TASKS, synthetic_experiences


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


def test_fast_mode_runs_leave_one_task_out_and_merges(compare, tmp_path, monkeypatch):
    experience = tmp_path / "experience.jsonl"
    ExperienceBuffer(synthetic_experiences(per_task=12)).export_jsonl(experience)
    seen = []

    def small_system(others, space, cache):
        # The benchmark's full meta-model takes minutes; a small one shows the protocol.
        seen.append(sorted(others))
        config = SurrogateConfig(members=2, joint_steps=100, reptile_iterations=5)
        buffer = ExperienceBuffer(e for group in others.values() for e in group)
        return MetaPEFTSystem(space, surrogate_config=config).fit(buffer)

    monkeypatch.setattr(compare, "fitted_system", small_system)
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
