"""``SearchPolicy``: how a study is searched with a meta-model, trial by trial.

The warm start (the recommendation and an EHVI portfolio along the predicted front),
the hand-over to another sampler, model-based proposals, the cold start without
experience, and learning from the study's own trials. Free of Optuna's sampler
interface: :class:`~metapeft_optuna.MetaPEFTSampler` adapts it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..tasks import TaskCharacteristics
from .experience import ExperienceBuffer, PEFTExperience
from .hpo import Observations, Proposal
from .recommendation import MethodRecommendation
from .surrogate import PEFTSurrogate, SurrogateConfig
from .system import MetaPEFTSystem

# A surrogate of one study's own trials (no experience): small and quick, and no Reptile
# (there is a single task).
LOCAL_SURROGATE = SurrogateConfig(members=3, joint_steps=200, reptile_iterations=0)
LOCAL_MIN_TRIALS = 4  # finished trials before the study's own surrogate takes over


@dataclass(frozen=True)
class Decision:
    """What the next trial does.

    Attributes:
        phase: ``"warm start"``, ``"hand-over"``, ``"interleaved exploration"``,
            ``"model-based"``, ``"model-based (this study only)"`` or ``"cold start"``.
        proposal: The configuration to run, or None: the trial is the other sampler's.
        reason: Why, in words.
    """

    phase: str
    proposal: Proposal | None
    reason: str


@dataclass(frozen=True)
class FinishedTrial:
    """A finished trial of the study, to learn from: a stable ``key`` (the trial's id),
    its search-space ``params``, its ``metrics`` by name and its ``learning_curve``."""

    key: Hashable
    params: dict[str, Any]
    metrics: dict[str, float | None]
    learning_curve: Sequence[dict[str, float]] = ()


class SearchPolicy:
    """Decides every trial of a study from a :class:`MetaPEFTSystem`.

    - **Warm start**: the first ``n_warm_start`` trials are the system's portfolio
      (:meth:`MetaPEFTSystem.portfolio`).
    - **Hand-over**: after it, every ``explore_every``-th trial (all with 1) is left to
      another sampler (``handed_to`` names it), interleaved exploration as in SMAC, so a
      prior that is wrong for this task cannot trap the search.
    - **Model-based**: other trials are the system's proposal, the meta-model adapted to
      the study's finished trials (:meth:`MetaPEFTSystem.propose`).
    - **Cold start** (no fitted system or no task): every method in turn at its
      defaults, then a surrogate of this study's own trials.
    - **Learning**: with ``learn_every``, every N finished trials become experience of
      the system (:meth:`MetaPEFTSystem.learn_from_experience`).

    Args:
        system: The meta-model (fitted, or not: a cold start).
        n_warm_start: Trials taken from the warm-start portfolio.
        explore_every: After the warm start, every N-th trial is handed over (None:
            none).
        learn_every: Learn from the study every N finished trials (None: never).
        seed: Seeds the recommendation.
        handed_to: The other sampler's name, for the reasons.

    Example:
        >>> policy = SearchPolicy(MetaPEFTSystem(), seed=0)
        >>> decision = policy.decide("study", None, None, Observations(), np.random.default_rng(0))
        >>> decision.phase, decision.proposal.params["method"]
        ('cold start', 'lora')
    """

    def __init__(
        self,
        system: MetaPEFTSystem,
        *,
        n_warm_start: int = 3,
        explore_every: int | None = 1,
        learn_every: int | None = None,
        seed: int | None = None,
        handed_to: str = "the independent sampler",
    ):
        self.system = system
        self.n_warm_start = n_warm_start
        self.explore_every = explore_every
        self.learn_every = learn_every
        self.seed = seed
        self.handed_to = handed_to
        self._portfolios: dict[Hashable, tuple[MethodRecommendation, list[Proposal]]] = {}
        self._learned: set[Hashable] = set()

    def models(self, chars: TaskCharacteristics | None) -> bool:
        """Whether the meta-model speaks for this study (fitted, task known)."""
        return self.system.is_fitted and chars is not None

    def hands_over(self, number: int, chars: TaskCharacteristics | None) -> bool:
        """Whether trial ``number`` is the other sampler's (only once a fitted
        meta-model has a task to speak for)."""
        after = number - self.n_warm_start
        return (
            self.models(chars)
            and bool(self.explore_every)
            and after >= 0
            and after % self.explore_every == self.explore_every - 1
        )

    def recommendation(self, study: Hashable) -> MethodRecommendation | None:
        """The recommendation behind the study's warm start, once it was made."""
        made = self._portfolios.get(study)
        return made[0] if made else None

    def decide(
        self,
        study: Hashable,
        chars: TaskCharacteristics | None,
        info: dict[str, Any] | None,
        observations: Observations,
        rng: np.random.Generator,
    ) -> Decision:
        """The next trial's decision.

        Args:
            study: Identifies the study (its warm-start portfolio is made once).
            chars: The task, or None when unknown.
            info: The model's info dict.
            observations: The study so far (``observations.number`` is the new trial's).
            rng: Random generator.
        """
        number = observations.number
        if self.models(chars) and number < self.n_warm_start:
            if study not in self._portfolios:
                self._portfolios[study] = self.system.portfolio(
                    chars, info, observations, self.n_warm_start, seed=self.seed, rng=rng
                )
            portfolio = self._portfolios[study][1]
            if number < len(portfolio):
                return Decision("warm start", portfolio[number], portfolio[number].reason)
        if self.hands_over(number, chars):
            if self.explore_every == 1:
                return Decision(
                    "hand-over", None, f"after the warm start every trial goes to {self.handed_to}"
                )
            return Decision(
                "interleaved exploration",
                None,
                f"every {self.explore_every}th trial goes to {self.handed_to}",
            )
        if self.models(chars):
            proposal = self.system.propose(chars, info, observations, rng=rng)
            return Decision("model-based", proposal, proposal.reason)
        local = self._local_surrogate(chars, info, observations)
        phase = "model-based (this study only)" if local is not None else "cold start"
        proposal = self.system.propose(chars, info, observations, rng=rng, surrogate=local)
        return Decision(phase, proposal, proposal.reason)

    def _local_surrogate(
        self,
        chars: TaskCharacteristics | None,
        info: dict[str, Any] | None,
        observations: Observations,
    ) -> PEFTSurrogate | None:
        """A surrogate of the study's own trials, once every method ran (finished or
        running) and ``LOCAL_MIN_TRIALS`` finished."""
        optimizer = self.system.hyperparameter_optimizer
        tried = {p["method"] for p in [*observations.params, *observations.running]}
        if chars is None or set(optimizer.allowed(observations.methods)) - tried:
            return None
        buffer = ExperienceBuffer(
            PEFTExperience.measured(chars, params, metrics, model_info=info, uid=str(i))
            for i, (params, metrics) in enumerate(zip(observations.params, observations.metrics))
            if all(v is None or math.isfinite(v) for v in metrics.values())
        )
        if len(buffer.complete()) < LOCAL_MIN_TRIALS:
            return None
        return PEFTSurrogate(self.system.search_space, LOCAL_SURROGATE).fit(buffer)

    def learn(
        self,
        chars: TaskCharacteristics | None,
        info: dict[str, Any] | None,
        task_name: str,
        finished: Sequence[FinishedTrial],
    ) -> int:
        """Make the study's finished trials experience of the system, ``learn_every`` at
        a time. Returns how many were learned now."""
        new = [t for t in finished if t.key not in self._learned]
        if chars is None or not self.learn_every or len(new) < self.learn_every:
            return 0
        for trial in new:
            self._learned.add(trial.key)
            self.system.learn_from_experience(
                chars,
                trial.params["method"],
                trial.params,
                trial.metrics,
                model_info=info,
                task_name=task_name,
                learning_curve=trial.learning_curve,
            )
        return len(new)
