"""``MetaHyperparameterOptimizer``: proposes PEFT configurations by multi-objective
acquisition on the (adapted) surrogate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import schema
from ..training.search_space import PEFTSearchSpace
from ..validation import check_int
from .acquisition import (
    expected_hypervolume_improvement,
    expected_improvement,
    knee_index,
    pareto_mask,
)
from .features import describe_prediction, prediction_dict, target_columns, target_vector
from .surrogate import PEFTSurrogate


@dataclass
class Proposal:
    """A proposed configuration with its prediction and the reason it was chosen.

    Example:
        >>> p = Proposal({"method": "lora"}, np.array([0.8, np.nan, np.log(600), np.log(20)]),
        ...              np.array([0.05, np.nan, 0.1, 0.1]), 0.3, "example")
        >>> round(p.prediction()["peak_memory_mb"])
        600
    """

    params: dict[str, Any]
    mean: np.ndarray  # a target vector (features.target_vector)
    std: np.ndarray
    acquisition: float
    reason: str

    def prediction(self) -> dict[str, float]:
        """Predicted objectives in their own units, with standard deviations
        (:func:`~metapeft_optuna.meta.features.prediction_dict`)."""
        return prediction_dict(self.mean, self.std)

    def without(self, names: Sequence[str], why: str) -> Proposal:
        """A copy whose predictions of the metrics ``names`` are unknown (NaN), the
        reason restated with what is still predicted and ``why``."""
        mean, std = self.mean.copy(), self.std.copy()
        for name in names:
            mean[schema.METRICS.index(name)] = std[schema.METRICS.index(name)] = np.nan
        reason = self.reason.split("; predicted ")[0]
        if np.isfinite(mean).any():
            reason += "; predicted " + describe_prediction(prediction_dict(mean, std))
        return Proposal(self.params, mean, std, self.acquisition, f"{reason}; {why}")


@dataclass(frozen=True)
class Observations:
    """A study as a proposal sees it.

    Attributes:
        objectives: The study's objective names (``schema.OBJECTIVE_SPECS`` keys), in
            the study's order.
        params: Search-space parameters (``trial.params``) of its finished trials.
        metrics: Their metrics by name (``schema.trial_metrics``), aligned with
            ``params``.
        running: Parameters of trials still running on other workers: never proposed
            again, and believed at their predicted values so that workers spread out.
        methods: The methods the objective allows (None: the search space's).
        number: The new trial's number, where the cold start's turn of methods begins
            (workers that start at the same moment, before either has written its
            parameters, still begin on different methods).

    Example:
        >>> Observations(("val_loss", "train_seconds")).objectives
        ('val_loss', 'train_seconds')
    """

    objectives: tuple[str, ...] = schema.DEFAULT_OBJECTIVES
    params: Sequence[dict[str, Any]] = ()
    metrics: Sequence[dict[str, float | None]] = ()
    running: Sequence[dict[str, Any]] = ()
    methods: Sequence[str] | None = None
    number: int = 0


class MetaHyperparameterOptimizer:
    """Chooses the next configurations by expected hypervolume improvement (EHVI).

    Candidates are random configurations of the search space plus local perturbations
    of the best configurations seen so far (in this study and, through experience
    replay, on similar past tasks). The study's objectives, named, are picked from the
    surrogate's target vector and minimised internally (maximised ones negated, memory,
    time and loss on a log scale), scaled to comparable ranges. A batch of proposals is
    built greedily: each chosen candidate's predicted mean joins the front before the
    next is chosen ("Kriging believer"), which spreads a portfolio along the predicted
    Pareto front instead of repeating one configuration. With nothing observed or
    pending yet, the first of several objectives' proposals is the knee of the predicted
    front (:func:`~metapeft_optuna.meta.acquisition.knee_index`): good quality at low
    cost, where EHVI alone favours the uncertain, accurate and expensive corner.

    Args:
        search_space: The PEFT search space.
        n_candidates: Random candidates scored per proposal round.
        n_local: Perturbations generated around each seed configuration.
        n_screen: Candidates kept for exact EHVI after a cheap optimistic screening.

    Example:
        >>> optimizer = MetaHyperparameterOptimizer(PEFTSearchSpace())
        >>> proposals = optimizer.propose(None, None, n=2, rng=np.random.default_rng(0))
        >>> len(proposals), proposals[0].reason.startswith("cold start")
        (2, True)
    """

    def __init__(
        self,
        search_space: PEFTSearchSpace,
        n_candidates: int = 512,
        n_local: int = 16,
        n_screen: int = 64,
    ):
        for name, value in (("n_candidates", n_candidates), ("n_screen", n_screen)):
            check_int("MetaHyperparameterOptimizer", name, value)
        check_int("MetaHyperparameterOptimizer", "n_local", n_local, 0)
        self.space = search_space
        self.n_candidates = n_candidates
        self.n_local = n_local
        self.n_screen = n_screen

    # --- candidates ----------------------------------------------------------------------
    def candidates(
        self,
        rng: np.random.Generator,
        seeds: Sequence[dict[str, Any]] = (),
        methods: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Random configurations of the allowed methods, plus neighbours of ``seeds``."""
        allowed = self.allowed(methods)
        pool = [
            self.space.sample(rng, allowed[int(rng.integers(len(allowed)))])
            for _ in range(self.n_candidates)
        ]
        for seed in seeds:
            if seed.get("method") in allowed:
                pool.append(self.space.sample_completion(dict(seed), rng))
                pool += [self.space.perturb(seed, rng) for _ in range(self.n_local)]
        return pool

    def allowed(self, methods: Sequence[str] | None) -> list[str]:
        return [m for m in (methods or self.space.methods) if m in self.space.methods]

    # --- proposals -----------------------------------------------------------------------
    def propose(
        self,
        surrogate: PEFTSurrogate | None,
        context: np.ndarray | None,
        observations: Observations = Observations(),
        *,
        n: int = 1,
        rng: np.random.Generator | None = None,
        seeds: Sequence[dict[str, Any]] = (),
    ) -> list[Proposal]:
        """Propose ``n`` configurations.

        Args:
            surrogate: A fitted (and adapted) surrogate, or None for a cold start.
            context: The task's raw context vector (``features.context_vector``).
            observations: The study so far: its objectives (EHVI on several, EI on one),
                finished and running trials, allowed methods, the new trial's number.
            n: How many proposals.
            rng: Random generator.
            seeds: Configurations to search around (good ones from similar tasks).

        Returns:
            ``n`` :class:`Proposal` (fewer if the candidate pool is smaller), none of
            them a finished or running configuration.
        """
        objectives, methods = observations.objectives, observations.methods
        observed_params, observed_metrics = observations.params, observations.metrics
        running = observations.running
        used = [*observed_params, *running]
        rng = rng or np.random.default_rng()
        if surrogate is None or not surrogate.is_fitted:
            return self._cold_start(n, rng, used, methods, observations.number)
        pending = []
        if running:  # believed at their predicted values
            pending = list(surrogate.predict(context, np.stack(self._encode(running)))[0])
        best_seen = self._best_observed(observed_params, observed_metrics, objectives)
        pool = self.candidates(rng, list(seeds) + best_seen, methods)
        seen = {_key(p) for p in used}
        pool = [p for p in pool if _key(p) not in seen]
        encoded = np.stack(self._encode(pool))
        full_mean, full_std = surrogate.predict(context, encoded)
        columns, signs = target_columns(objectives)
        unknown = [o for o, c in zip(objectives, columns) if np.isnan(full_mean[:, c]).all()]
        if unknown:  # e.g. an objective no experience measured
            proposals = self._cold_start(n, rng, used, methods, observations.number)
            why = f"cold start: the meta-model does not predict {', '.join(unknown)}"
            return [replace(p, reason=why) for p in proposals]
        # The study's objectives only, all minimised.
        mean, std = full_mean[:, columns] * signs, full_std[:, columns]
        observed = (
            np.array([target_vector(m) for m in observed_metrics]).reshape(-1, len(schema.METRICS))[
                :, columns
            ]
            * signs
        )
        observed = observed[np.isfinite(observed).all(axis=1)]  # unknown or infinite: out
        if len(objectives) > 1:
            keep = self._screen(mean, std, observed)
            pool, mean, std = [pool[i] for i in keep], mean[keep], std[keep]
            full_mean, full_std = full_mean[keep], full_std[keep]
            scores_of = self._ehvi_scorer(mean, std, observed)
        else:
            incumbent = observed[:, 0].min() if len(observed) else mean[:, 0].min() + 0.05

            def scores_of(believed: list[np.ndarray]) -> np.ndarray:
                best = min([incumbent] + [b[0] for b in believed])
                return expected_improvement(mean[:, 0], std[:, 0], best)

        proposals: list[Proposal] = []
        believed: list[np.ndarray] = [np.asarray(p)[columns] * signs for p in pending]
        taken: set[int] = set()
        kind = "EHVI" if len(objectives) > 1 else f"EI on {objectives[0]}"
        knee_first = len(objectives) > 1 and not len(observed) and not believed
        for _ in range(min(n, len(pool))):
            scores = scores_of(believed)
            scores[list(taken)] = -np.inf
            if knee_first and not taken:
                pick = knee_index(mean)
                why = f"knee of the predicted Pareto front of {len(pool)} candidates"
            else:
                pick = int(np.argmax(scores))
                why = f"highest {kind} ({scores[pick]:.4g}) of {len(pool)} candidates"
            taken.add(pick)
            believed.append(mean[pick])
            reason = f"{why}; predicted " + describe_prediction(
                prediction_dict(full_mean[pick], full_std[pick])
            )
            proposals.append(
                Proposal(pool[pick], full_mean[pick], full_std[pick], float(scores[pick]), reason)
            )
        return proposals

    def _encode(self, configurations: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        return [self.space.encode(p) for p in configurations]

    def _screen(self, mean: np.ndarray, std: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Indices of the ``n_screen`` candidates whose optimistic outcome (mean - std)
        improves most on the observed front (additive epsilon indicator); exact EHVI,
        whose cost grows with the front's grid, is then computed for these only."""
        if len(mean) <= self.n_screen or len(observed) == 0:
            return np.arange(len(mean))
        optimistic = mean - std
        front = observed[pareto_mask(observed)]
        span = np.ptp(np.vstack([optimistic, front]), axis=0)
        span = np.where(span > 1e-9, span, 1.0)
        gain = ((front[None, :, :] - optimistic[:, None, :]) / span).max(axis=2).min(axis=1)
        return np.argsort(-gain)[: self.n_screen]

    def _ehvi_scorer(self, mean: np.ndarray, std: np.ndarray, observed: np.ndarray):
        # Minimised objectives, each scaled by the spread of predictions and
        # observations, with the reference point just beyond the worst of them.
        everything = np.vstack([mean, observed]) if len(observed) else mean
        low, high = everything.min(axis=0), everything.max(axis=0)
        span = np.where(high - low > 1e-9, high - low, 1.0)
        scaled_mean = (mean - low) / span
        scaled_std = std / span
        reference = np.full(mean.shape[1], 1.1)
        front = (observed - low) / span

        def scores(believed: list[np.ndarray]) -> np.ndarray:
            points = front
            if believed:
                points = np.vstack([front, (np.array(believed) - low) / span])
            if len(points):
                points = points[pareto_mask(points)]
            return expected_hypervolume_improvement(scaled_mean, scaled_std, points, reference)

        return scores

    def _best_observed(
        self,
        params: Sequence[dict[str, Any]],
        metrics: Sequence[dict[str, float | None]],
        objectives: Sequence[str],
    ) -> list[dict[str, Any]]:
        """The three configurations best on the study's (first quality) objective."""
        name = schema.quality_objective(objectives) or objectives[0]
        sign = schema.OBJECTIVE_SPECS[name].sign
        rows = [(sign * m[name], p) for p, m in zip(params, metrics) if m.get(name) is not None]
        rows.sort(key=lambda r: r[0])
        return [p for _, p in rows[:3]]

    def _cold_start(
        self,
        n: int,
        rng: np.random.Generator,
        used: Sequence[dict[str, Any]],
        methods: Sequence[str] | None = None,
        start: int = 0,
    ) -> list[Proposal]:
        """Methods in turn by trial number (``start``): each at its defaults while that
        method is untried, else a random configuration of it. The turn depends on the
        number alone because workers starting together may not see each other's
        parameters yet: choosing among the untried methods instead sent a worker to the
        defaults another worker was already running."""
        allowed = self.allowed(methods)
        tried = {p.get("method") for p in used}
        proposals = []
        for i in range(n):
            method = allowed[(start + i) % len(allowed)]
            if method in tried:
                params = self.space.sample(rng, method)
            else:
                params = self.space.defaults(method)
                tried.add(method)
            params = self.space.sample_completion(params, rng)
            proposals.append(
                Proposal(
                    params,
                    np.full(len(schema.METRICS), np.nan),
                    np.full(len(schema.METRICS), np.inf),
                    0.0,
                    "cold start: no experience yet, so methods are tried in turn, first "
                    "at their default settings",
                )
            )
        return proposals


def _key(params: dict[str, Any]) -> tuple:
    return tuple(
        sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in params.items())
    )
