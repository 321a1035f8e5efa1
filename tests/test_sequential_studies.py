"""benchmarks/sequential_studies.py: tasks arriving one at a time into one storage."""

from __future__ import annotations

import csv
import sys

from metapeft_optuna.meta import ExperienceBuffer, MetaPEFTSystem, SurrogateConfig
from metapeft_optuna.training import PEFTSearchSpace

import pytest
from conftest import import_benchmark
from synthetic_experience import TASKS, synthetic_experiences


@pytest.fixture(scope="module")
def sequential():
    return import_benchmark("sequential_studies")


def test_every_task_arrives_after_a_given_prior_and_the_first_study_is_the_priors(
    sequential, tmp_path, monkeypatch
):
    experience = tmp_path / "experience.jsonl"
    buffer = ExperienceBuffer(synthetic_experiences(per_task=10))
    buffer.export_jsonl(experience)
    # A small prior (the benchmark's own, fitted on --prior-tasks tasks, takes minutes).
    config = SurrogateConfig(members=2, joint_steps=100, reptile_iterations=5)
    prior = tmp_path / "prior"
    MetaPEFTSystem(PEFTSearchSpace(), surrogate_config=config).fit(buffer).save(prior)
    out = tmp_path / "out"
    # Smaller oracles than the benchmark's (a 3,000-configuration pool, cross-validated fits).
    compare = sys.modules["compare_samplers"]
    monkeypatch.setattr(
        sequential, "reference_pool", lambda space: compare.reference_pool(space, 200)
    )
    monkeypatch.setattr(compare.TaskOracle, "_cross_validated", staticmethod(lambda *a: {}))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            *("sequential_studies.py", "--experience", str(experience), "--prior", str(prior)),
            *("--orders", "1", "--trials", "2", "--late", "5", "--out", str(out)),
        ],
    )
    sequential.main()
    with open(out / "sequential.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # With --prior every task is a study, for each sampler.
    for name in ("loop", "prior", "tpe"):
        assert sorted(r["task"] for r in rows if r["sampler"] == name) == sorted(TASKS)
    # The first study has no earlier one to learn from: the loop is the prior alone.
    first = {r["sampler"]: r for r in rows if r["earlier_studies"] == "0"}
    assert first["loop"]["hv_last"] == first["prior"]["hv_last"]
    assert first["loop"]["task"] == first["prior"]["task"]
    summary = (out / "sequential.md").read_text()
    assert "With at least 5 earlier studies (3 studies), loop - prior: HV@1" in summary
