"""Experience read from Optuna storages: every metapeft study is a source task, and each
of its finished or pruned trials one experience."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import schema
from ..errors import ConfigError
from ..peft import PEFTMethod
from ..tasks import TaskCharacteristics
from ..validation import check_writable
from .peft_experience import PEFTExperience

RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
JOURNAL_SUFFIXES = (".log", ".journal")
# A running trial records a heartbeat this often; one silent for GRACE_SECONDS is stale:
# its process died (kill -9, a lost machine). Heartbeats come from a thread beside the
# fine-tune, which holds the GIL for well under a second at a time.
HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 120
RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback  # a stale trial's configuration
SCHEMA_ATTEMPTS = 5
DRIVERS = {
    "postgresql": "pip install 'metapeft-optuna[postgres]' (psycopg 3)",
    "mysql": "pip install pymysql and write mysql+pymysql://...",
}


def open_storage(
    spec: str | Path | optuna.storages.BaseStorage, *, heartbeat: bool = False, create: bool = True
) -> optuna.storages.BaseStorage:
    """The Optuna storage a user names: an RDB URL (``sqlite:///studies/x.db``,
    ``postgresql://...``), a journal file (a path ending in ``.log`` or ``.journal``; one
    file that several processes may share), or a storage object (returned as is).

    With ``heartbeat`` an RDB storage records heartbeats of running trials: a trial whose
    process died is failed by the next trial of any worker (Optuna's
    ``fail_stale_trials``) instead of staying RUNNING for ever, and its configuration is
    retried once (``RetryHeartbeatStaleTrialCallback``). Journal files have no heartbeats.
    Without ``create`` a file storage must exist (reading experience creates nothing).

    Raises:
        ConfigError: Anything else (a plain path, an unknown scheme), saying how to
            write each kind; a file storage that is a folder, not a SQLite database or
            journal, missing (without ``create``) or in a place that cannot be written;
            a server that does not answer; a missing database driver.

    Example:
        >>> open_storage("results.db")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        metapeft_optuna.errors.ConfigError: storage 'results.db': ... sqlite:///results.db ...
    """
    if isinstance(spec, optuna.storages.BaseStorage):
        return spec
    text = str(spec)
    path = check_storage(text, create=create)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path is not None and "://" not in text:
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    if text.startswith("postgresql://"):  # psycopg 3 whatever SQLAlchemy's default driver
        text = "postgresql+psycopg://" + text[len("postgresql://") :]
    return _rdb_storage(text, heartbeat)


def check_storage(spec: str, *, create: bool = True) -> Path | None:
    """What :func:`open_storage` checks before it opens anything: the kind of storage
    and, for a file storage (SQLite, journal), the file; returns that file's path.

    Raises:
        ConfigError: As :func:`open_storage`.
    """
    if spec.endswith(JOURNAL_SUFFIXES) and "://" not in spec:
        path = Path(spec).expanduser()
        check_storage_file(spec, path, JOURNAL, create)
        return path
    scheme, found, rest = spec.partition("://")
    if not found or scheme.split("+", 1)[0] not in RDB_SCHEMES:
        raise ConfigError(
            f"storage {spec!r}: not an Optuna storage; write sqlite:///{rest or spec} "
            "(SQLite), postgresql://user@host/db, or a journal file path ending in .log."
        )
    database = rest[1:]  # sqlite:///PATH: PATH after the third slash
    if scheme.startswith("sqlite") and database not in ("", ":memory:"):
        path = Path(database).expanduser()
        check_storage_file(spec, path, SQLITE, create)
        return path
    return None


SQLITE, JOURNAL = "SQLite database", "Optuna journal file"


def check_storage_file(spec: str, path: Path, kind: str, create: bool) -> None:
    """Raise :class:`ConfigError` unless ``path`` is a ``kind`` (or, when ``create``, an
    empty or missing file in a place that can be written). Reads at most one line."""
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as fh:
            head = fh.readline(1 << 16)
        if kind == SQLITE:
            ok = head.startswith(b"SQLite format 3\0")
        else:
            try:
                record = json.loads(head)
            except ValueError:
                record = None
            ok = isinstance(record, dict) and "op_code" in record
        if not ok:
            raise ConfigError(
                f"storage {spec!r}: {path} is not an {kind} (it holds something else); "
                "name a file Optuna wrote, or a new file."
            )
    elif not path.exists() and not create:
        raise ConfigError(
            f"storage {spec!r}: {path} does not exist; name an existing storage "
            "(`metapeft tune --storage` creates one)."
        )
    if create:  # reading experience needs no write access
        check_writable("storage", path, folder=False)


def _rdb_storage(url: str, heartbeat: bool) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, its errors as one line each. Workers started together on an
    empty database race to create its tables: the loser retries (the tables are there)."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are flagged experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                options: dict[str, Any] = {}
                if heartbeat:
                    options = {
                        "heartbeat_interval": HEARTBEAT_SECONDS,
                        "grace_period": GRACE_SECONDS,
                        "heartbeat_stale_trial_callback": RETRY(max_retry=1),
                    }
                return optuna.storages.RDBStorage(url, **options)
        except ImportError:
            hint = DRIVERS.get(parsed.get_backend_name(), "the SQLAlchemy driver for this URL")
            raise ConfigError(f"storage {shown}: its database driver is missing; {hint}.") from None
        except sqlalchemy.exc.OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise ConfigError(
                f"storage {shown}: cannot open it ({reason}); check that the server runs, "
                "the URL's user, password and database, and that the folder is writable."
            ) from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 + random.random())  # another worker is creating the tables
    raise AssertionError("unreachable")


def storage_experiences(
    storage: str | optuna.storages.BaseStorage, exclude_studies: Sequence[str] = ()
) -> Iterator[PEFTExperience]:
    """The experiences of every metapeft study of ``storage`` (a URL or an object): the
    studies whose user attributes carry the task (``schema.STUDY_TASK``), except
    ``exclude_studies``. A study whose objectives are not a PEFT study's is skipped
    with a warning."""
    storage = open_storage(storage, create=False)
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = summary.user_attrs
        if summary.study_name in exclude_studies or schema.STUDY_TASK not in attrs:
            continue
        study_id = storage.get_study_id_from_name(summary.study_name)
        try:
            objectives = schema.objectives_of(
                optuna.load_study(study_name=summary.study_name, storage=storage).metric_names,
                summary.directions,
            )
        except ConfigError as exc:  # not a PEFT study's objectives: not experience
            warnings.warn(f"study {summary.study_name!r} skipped: {exc}", stacklevel=2)
            continue
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        for trial in storage.get_all_trials(study_id, deepcopy=False, states=states):
            experience = experience_from_trial(trial, summary.study_name, attrs, objectives)
            if experience is not None:
                yield experience


def experience_from_trial(
    trial: FrozenTrial,
    study_name: str,
    study_attrs: dict[str, Any],
    objectives: Sequence[str] = schema.DEFAULT_OBJECTIVES,
) -> PEFTExperience | None:
    """The experience of one trial, or None when it is not one (failed, running, ...).

    Args:
        trial: A trial of a PEFT study.
        study_name: Its study's name.
        study_attrs: Its study's user attributes (task and model).
        objectives: Its study's objective names (:func:`schema.study_objectives`): the
            trial's values are read by these names, never by position.
    """
    if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
        return None
    if "method" not in trial.params:
        return None
    task = study_attrs[schema.STUDY_TASK]
    chars = TaskCharacteristics.from_dict(task["characteristics"])
    values = trial.values if trial.state == TrialState.COMPLETE else None
    metrics: dict[str, float | None] = {}
    if values is not None:
        metrics = schema.trial_metrics(objectives, values, trial.user_attrs)
    if any(v is not None and not math.isfinite(v) for v in metrics.values()):
        return None
    model_info = dict(study_attrs.get(schema.STUDY_MODEL) or {})
    key = json.dumps(
        [
            task["name"],
            model_info.get("name"),
            study_name,
            trial.number,
            str(trial.datetime_start),
            trial.params,
        ],
        sort_keys=True,
        default=str,
    )
    return PEFTExperience(
        task_characteristics=chars,
        method_used=PEFTMethod(trial.params["method"]),
        hyperparameters=dict(trial.params),
        performance_metrics=metrics,
        task_name=task["name"],
        model_info=model_info,
        learning_curve=tuple(trial.user_attrs.get(schema.TRIAL_CURVE) or ()),
        state="complete" if values is not None else "pruned",
        uid=hashlib.sha1(key.encode()).hexdigest()[:16],
        study=study_name,
        quality_objective=schema.quality_objective(objectives) or "",
    )
