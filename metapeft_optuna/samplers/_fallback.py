"""The samplers ``MetaPEFTSampler`` hands over to after its warm start (``fallback``), seeded
so that parallel workers with one seed, and a restarted study, never replay a draw."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


def trial_seed(seed: int, number: int) -> int:
    """A seed of its own for every trial number (the number is unique in a study, across
    workers and restarts)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


FALLBACKS = ("tpe", "gp")  # MetaPEFTSampler's ``fallback`` choices


def fallback_sampler(kind: str, seed: int | None) -> BaseSampler:
    """The sampler MetaPEFTSampler hands over to, as ``fallback`` names it."""
    if kind == "gp":
        random = _TrialSeededRandomSampler(seed)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=6, independent_sampler=random)
    # Multivariate TPE models the PEFT parameters jointly (they interact: rank with alpha,
    # steps with learning rate). Its random start-up is shortened from 10 to 6 trials,
    # the warm start included: measured best after a warm start (docs/benchmarks.md);
    # GPSampler's is set the same. Optuna still flags multivariate TPE as experimental.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return TPESampler(seed=seed, multivariate=True, n_startup_trials=6)


class _TrialSeededRandomSampler(BaseSampler):
    """Random draws from one stream per trial, seeded by ``(seed, trial number)``: a
    restarted study or a worker with the same seed never repeats a draw, as a
    ``RandomSampler(seed)`` that starts its stream again with the process would."""

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._streams: dict[int, optuna.samplers.RandomSampler] = {}

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict) -> dict:
        return {}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        stream = self._streams.get(trial._trial_id)
        if stream is None:
            seed = None if self._seed is None else trial_seed(self._seed, trial.number)
            stream = self._streams[trial._trial_id] = optuna.samplers.RandomSampler(seed)
        return stream.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._streams.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        self._seed = None
