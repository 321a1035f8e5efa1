"""PostgreSQL for several machines, against a real server: workers started together on an
empty database share one study. Needs ``METAPEFT_TEST_POSTGRES`` (a URL of a role that
may create databases, e.g. ``postgresql://metapeft:metapeft@localhost/postgres``), which
``.ci/run`` sets after starting a server; skipped with a message elsewhere."""

from __future__ import annotations

import multiprocessing
import os
import uuid

from metapeft_optuna import ConfigError
from metapeft_optuna.meta.storages import open_storage

import optuna
import pytest

URL_VARIABLE = "METAPEFT_TEST_POSTGRES"


@pytest.fixture
def database():
    """A fresh, empty database on the server, dropped afterwards."""
    base = os.environ.get(URL_VARIABLE)
    if not base:
        pytest.skip(f"no PostgreSQL server: set {URL_VARIABLE} (.ci/run starts one)")
    psycopg = pytest.importorskip("psycopg")
    from sqlalchemy.engine import make_url

    try:
        connection = psycopg.connect(base, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"{URL_VARIABLE}: cannot connect ({exc})")
    name = f"metapeft_{uuid.uuid4().hex[:10]}"
    connection.execute(f'CREATE DATABASE "{name}"')
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    connection.close()


def _worker(url: str, n_trials: int, start) -> None:
    import metapeft_optuna  # noqa: F401  (BLAS before mlx)
    from metapeft_optuna.samplers import MetaPEFTSampler
    from metapeft_optuna.training import PEFTObjective, PEFTSearchSpace, TrainingBudget

    objective = PEFTObjective(
        "parity@64",
        model="tiny",
        search_space=PEFTSearchSpace(methods=("lora", "dora", "prompt_tuning", "p_tuning")),
        budget=TrainingBudget(curve_points=1, eval_examples=8, curve_examples=8),
    )
    start.wait()  # every worker opens the empty database at the same moment
    study = optuna.create_study(
        study_name="shared",
        storage=open_storage(url, heartbeat=True),
        directions=objective.directions,
        sampler=MetaPEFTSampler(objective=objective, use_prior=False, seed=0),
        load_if_exists=True,
    )
    study.optimize(objective, n_trials=n_trials)


def test_four_workers_start_together_on_an_empty_database(database):
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_worker, args=(database, 5, start)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=900)
        assert worker.exitcode == 0
    trials = optuna.load_study(study_name="shared", storage=database).trials
    assert len(trials) == 20
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 20


def test_a_wrong_password_is_one_line(database):
    from sqlalchemy.engine import make_url

    wrong = make_url(database).set(password="not-the-password").render_as_string(False)
    with pytest.raises(ConfigError, match=r"cannot open it .*password") as info:
        open_storage(wrong)
    assert "not-the-password" not in str(info.value) and "\n" not in str(info.value)
