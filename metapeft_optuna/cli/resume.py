"""What makes a stopped study resume cleanly: stop signals as a clean interrupt, and a
count of the trials that ran to an end, so that a trial cut short is tried again and does
not use up the study's ``--trials``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from .. import schema

if TYPE_CHECKING:  # optuna loads when a study runs, not when the CLI starts
    import optuna
    from optuna.trial import FrozenTrial


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a study (a KeyboardInterrupt, so Optuna marks the running
    trial failed). ``str()`` is the signal's name."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM (what schedulers send) into :class:`Interrupted`."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def interrupted(trial: FrozenTrial) -> bool:
    """A trial failed by SIGINT or SIGTERM (its fail reason says so)."""
    reason = trial.user_attrs.get(schema.TRIAL_FAIL_REASON)
    return reason is not None and reason.startswith(schema.INTERRUPTED)


def cut_short(trial: FrozenTrial) -> bool:
    """A failed trial that never ran to an end: interrupted by a signal, or failed by a
    heartbeat because its worker died (Optuna records no reason then). A trial failed by
    its configuration (NaN loss, memory ceiling) has a reason and ran to an end."""
    from optuna.trial import TrialState

    no_reason = not trial.user_attrs.get(schema.TRIAL_FAIL_REASON)
    return trial.state == TrialState.FAIL and (no_reason or interrupted(trial))


def ended_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials that ran to an end (complete, pruned, or failed by their
    configuration): what ``--trials`` counts."""
    from optuna.trial import TrialState

    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=ended) if not cut_short(t)]


def counted_trials(study: optuna.Study) -> int:
    """How many :func:`ended_trials` the study has."""
    return len(ended_trials(study))


class StopAtTrials:
    """Stop a worker once :func:`counted_trials` plus the trials other workers started
    during its run reach ``total``, so parallel workers end at the total instead of each
    finishing one more (Optuna's ``MaxTrialsCallback`` would also count trials cut short).
    Trials left running from before the run do not count: they may be a killed worker's,
    not yet failed by the heartbeat. Two workers finishing in the same instant may still
    both start one more."""

    def __init__(self, total: int):
        self.total = total
        self.since = datetime.now()  # Optuna stamps trials with local naive times

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from optuna.trial import TrialState

        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        others = sum(t.datetime_start >= self.since for t in running if t.datetime_start)
        if counted_trials(study) + others >= self.total:
            study.stop()


def retry_interrupted(study: optuna.Study) -> None:
    """Enqueue once the configuration of every interrupted trial not yet retried (a dead
    worker's trial is retried by the storage's heartbeat callback)."""
    from ..meta.storages import RETRY

    trials = study.get_trials(deepcopy=False)
    retried = {RETRY.retried_trial_number(t) for t in trials}
    retry = RETRY(max_retry=1)
    for trial in trials:
        if interrupted(trial) and trial.number not in retried:
            retry(study, trial)
