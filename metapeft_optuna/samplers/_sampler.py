"""``MetaPEFTSampler``: Optuna's sampler interface over the meta-model's search policy."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from .. import schema
from ..meta.experience import ExperienceBuffer
from ..meta.hpo import Observations
from ..meta.policy import Decision, FinishedTrial, SearchPolicy
from ..meta.prior import load_prior
from ..meta.system import MetaPEFTSystem
from ..tasks import TaskCharacteristics
from ..training.search_space import PEFTSearchSpace, default_specs, in_distribution
from ..validation import check_choice, check_int, require_torch
from ._fallback import FALLBACKS, fallback_sampler, trial_seed


class MetaPEFTSampler(BaseSampler):
    """Sampler for PEFT studies, warm-started from a meta-model of earlier fine-tunes.

    - **Warm start**: the first ``n_warm_start`` trials come from the meta-model's
      recommendation for this task (the knee of its predicted Pareto front) followed by
      a portfolio chosen by expected hypervolume improvement, so they spread along the
      *predicted* front.
    - **Hand-over**: by default (``explore_every=1``) every later trial is the
      independent sampler's, multivariate TPE, which models the warm-start trials with
      the rest of the study. On the meta-dataset this beat TPE alone from 3 trials on
      and the model-based search below from 10 (``docs/benchmarks.md``). Where torch is
      installed, ``fallback="gp"`` hands over to Optuna's GPSampler instead, which
      measured better still from 10 trials on.
    - **Model-based search** (``explore_every`` > 1 or None): the surrogate is adapted to
      this study's own finished trials and the configuration with the highest EHVI (or EI
      in single-objective studies) is proposed, with every ``explore_every``-th trial
      left to the independent sampler; trials still running on other workers are
      "believed" at their predicted values so workers spread out.
    - **Cold start**: with no experience at all, every method is tried at its defaults,
      then a surrogate fitted on this study's own trials takes over.

    The policy itself is :class:`~metapeft_optuna.meta.policy.SearchPolicy`; this class
    adapts it to Optuna. The proposal is made jointly when the objective first asks for
    a PEFT parameter (``method``), using that parameter's actual choices; the following
    PEFT parameters of the trial are answered from it. Any other parameter, or one whose
    proposed value does not fit the objective's distribution, goes to
    ``independent_sampler`` (TPE), which also receives ``before_trial``/``after_trial``/
    ``reseed_rng``.

    Context (task characteristics and model info) comes from ``objective`` if given,
    else from ``task_characteristics``/``model_info``, else from the study's user
    attributes, which :class:`~metapeft_optuna.PEFTObjective` writes on its first trial.

    Args:
        objective: A :class:`~metapeft_optuna.PEFTObjective` to take task, model and
            search space from.
        task_characteristics: The task's meta-features (instead of ``objective``).
        model_info: The model's info dict (instead of ``objective``).
        search_space: The PEFT space (default: the objective's, else all methods). A
            space that only leaves methods out is widened to every method's for the
            meta-model, so the shipped prior still applies; proposals keep to the
            objective's methods.
        system: A fitted :class:`MetaPEFTSystem`; default: the shipped prior (see
            ``metapeft prior``), or a cold start when ``use_prior`` is False.
        use_prior: Load the shipped prior when no ``system`` is given.
        experience: More storages or JSON Lines exports to learn from (the current
            study is skipped); the meta-model is updated with them incrementally
            (:meth:`MetaPEFTSystem.update`), or fitted on them without a prior.
        n_warm_start: Trials taken from the warm-start portfolio (0: none).
        explore_every: After the warm start, every N-th trial is proposed by
            ``independent_sampler`` instead of the meta-model (1: all of them; None:
            none).
        n_candidates: Random candidates scored per proposal (set on the system's
            optimizer).
        learn_every: Update the meta-model with this study's finished trials every N
            trials (None: only the per-proposal adaptation).
        learn_from_storage: Learn from every other PEFT study in the study's own
            storage (the storage is the experience), when the first trial starts.
        fallback: The sampler for handed-over trials and non-PEFT parameters, both
            starting model-based after 6 trials, the warm start included: ``"tpe"``
            (multivariate TPE, re-seeded per trial) or ``"gp"`` (Optuna's GPSampler,
            which needs torch; its random start-up draws are seeded per trial).
        independent_sampler: A sampler of your own instead of ``fallback``'s (it keeps
            its own seeding).
        seed: Seed for reproducible proposals. Every trial's randomness derives from
            ``(seed, trial number)``, so parallel workers with the same seed and a
            restarted study never replay a configuration (with ``fallback="gp"``, its
            model-based proposals are seeded once: give parallel workers their own seeds).

    Raises:
        ConfigError: An argument out of range (a ``ValueError``), or ``fallback="gp"``
            without torch installed.

    Example:
        >>> import optuna
        >>> from metapeft_optuna import PEFTObjective, TrainingBudget
        >>> objective = PEFTObjective("parity@64", model="tiny",
        ...                           budget=TrainingBudget(curve_points=1, eval_examples=8))
        >>> sampler = MetaPEFTSampler(objective=objective, use_prior=False, seed=0)
        >>> study = optuna.create_study(directions=objective.directions, sampler=sampler)
        >>> study.optimize(objective, n_trials=2)
        >>> [t.params["method"] for t in study.trials]
        ['lora', 'dora']
    """

    def __init__(
        self,
        *,
        objective: Any = None,
        task_characteristics: TaskCharacteristics | None = None,
        model_info: dict[str, Any] | None = None,
        search_space: PEFTSearchSpace | None = None,
        system: MetaPEFTSystem | None = None,
        use_prior: bool = True,
        experience: Sequence[str] = (),
        n_warm_start: int = 3,
        explore_every: int | None = 1,
        n_candidates: int = 512,
        learn_every: int | None = None,
        learn_from_storage: bool = True,
        fallback: str = "tpe",
        independent_sampler: BaseSampler | None = None,
        seed: int | None = None,
    ):
        check_int("MetaPEFTSampler", "n_warm_start", n_warm_start, 0)
        check_int("MetaPEFTSampler", "explore_every", explore_every, optional=True)
        check_int("MetaPEFTSampler", "n_candidates", n_candidates)
        check_int("MetaPEFTSampler", "learn_every", learn_every, optional=True)
        check_choice("MetaPEFTSampler", "fallback", fallback, FALLBACKS)
        if fallback == "gp" and independent_sampler is None:
            require_torch("MetaPEFTSampler(fallback='gp')", "GPSampler", "or use fallback='tpe'")
        self._objective = objective
        self._characteristics = task_characteristics
        self._model_info = model_info
        self._space = meta_space(
            search_space or getattr(objective, "search_space", None) or PEFTSearchSpace()
        )
        self._system = system
        self._use_prior = use_prior
        self._experience = tuple(experience)
        self._learn_from_storage = learn_from_storage
        self._settings = {
            "n_warm_start": n_warm_start,
            "explore_every": explore_every,
            "learn_every": learn_every,
            "seed": seed,
        }
        self._n_candidates = n_candidates
        self._policy: SearchPolicy | None = None
        # Its own TPE is rebuilt per trial, seeded from (seed, trial number), and its own
        # GPSampler (which keeps state between trials) draws its random start-up that
        # way: workers on one storage, and a restarted run, never replay each other.
        self._fallback = fallback if independent_sampler is None else None
        self._independent = independent_sampler or fallback_sampler(fallback, seed)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._peft_names = set(self._space.distributions())
        self._proposals: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # --- Optuna's sampler interface -----------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._seed = None
        self._independent.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self._fallback == "tpe" and self._seed is not None:
            self._independent = fallback_sampler("tpe", trial_seed(self._seed, trial.number))
        self._independent.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        # PEFT proposals are joint but made at the first PEFT suggestion (see the class
        # docstring), where the objective's real distributions are known. Handed-over
        # trials are the independent sampler's, relative sampling included.
        if self._hands_over(study, trial):
            return self._independent.infer_relative_search_space(study, trial)
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._hands_over(study, trial):
            self._proposal_for(study, trial, None)  # records the phase
            return self._independent.sample_relative(study, trial, search_space)
        # In a study Optuna passes the empty space inferred above; a caller with a space
        # of its own (Optuna's contract tests) gets every parameter one by one.
        return {
            name: self.sample_independent(study, trial, name, distribution)
            for name, distribution in search_space.items()
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name in self._peft_names:
            method_distribution = param_distribution if param_name == "method" else None
            value = self._proposal_for(study, trial, method_distribution).get(param_name)
            if value is not None and in_distribution(param_distribution, value):
                return value
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._independent.after_trial(study, trial, state, values)
        with self._lock:
            self._proposals.pop(trial._trial_id, None)
        policy = self._policy
        if policy is not None and policy.learn_every and state == TrialState.COMPLETE:
            chars, info = self._context(study)
            objectives = self._objectives(study)
            finished = [
                FinishedTrial(
                    t._trial_id,
                    self._peft_params(t),
                    schema.trial_metrics(objectives, t.values, t.user_attrs),
                    t.user_attrs.get(schema.TRIAL_CURVE) or (),
                )
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "method" in t.params
            ]
            policy.learn(chars, info, study.study_name, finished)

    # --- the policy and what it needs from the study -------------------------------------------
    def _search_policy(self, study: Study) -> SearchPolicy:
        """Built at the first decision: the shipped prior is only read when needed."""
        if self._policy is None:
            system = self._system
            if system is None and self._use_prior:
                system = load_prior(self._space)
            system = system or MetaPEFTSystem(self._space)
            # The study's own storage is experience too: every other PEFT study in it.
            sources = [*self._experience, *([study._storage] if self._learn_from_storage else [])]
            if sources:
                extra = ExperienceBuffer.from_storages(sources, exclude_studies=[study.study_name])
                system.update(extra)
            system.hyperparameter_optimizer.n_candidates = self._n_candidates
            self._policy = SearchPolicy(
                system, handed_to=type(self._independent).__name__, **self._settings
            )
        return self._policy

    def _context(self, study: Study) -> tuple[TaskCharacteristics | None, dict | None]:
        if self._objective is not None:
            return self._objective.characteristics, self._objective.loaded.info.to_dict()
        if self._characteristics is not None:
            return self._characteristics, self._model_info
        attrs = study.user_attrs
        if schema.STUDY_TASK in attrs:
            task = attrs[schema.STUDY_TASK]
            return (
                TaskCharacteristics.from_dict(task["characteristics"]),
                attrs.get(schema.STUDY_MODEL),
            )
        return None, None

    def _objectives(self, study: Study) -> tuple[str, ...]:
        """The study's objective names: the objective's, else the study's metric names."""
        if self._objective is not None:
            return self._objective.objectives
        return schema.study_objectives(study)

    def _hands_over(self, study: Study, trial: FrozenTrial) -> bool:
        return self._search_policy(study).hands_over(trial.number, self._context(study)[0])

    def _peft_params(self, trial: FrozenTrial) -> dict[str, Any]:
        return {k: v for k, v in trial.params.items() if k in self._peft_names}

    def _observations(
        self, study: Study, trial: FrozenTrial, methods: list[str] | None
    ) -> Observations:
        objectives = self._objectives(study)
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE and "method" in t.params]
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and t._trial_id != trial._trial_id
            and "method" in t.params
        ]
        return Observations(
            objectives,
            [self._peft_params(t) for t in done],
            [schema.trial_metrics(objectives, t.values, t.user_attrs) for t in done],
            [self._peft_params(t) for t in running],
            methods,
            trial.number,
        )

    def _proposal_for(
        self, study: Study, trial: FrozenTrial, method_distribution: BaseDistribution | None
    ) -> dict[str, Any]:
        """The trial's proposed PEFT parameters (empty when handed over), decided once."""
        with self._lock:
            cached = self._proposals.get(trial._trial_id)
            if cached is not None:
                return cached
            decision = self._decide(study, trial, method_distribution)
            params = decision.proposal.params if decision.proposal else {}
            self._proposals[trial._trial_id] = params
        record: dict[str, Any] = {"phase": decision.phase, "reason": decision.reason}
        if decision.proposal is not None and np.isfinite(decision.proposal.mean).any():
            record.update(decision.proposal.prediction())
        study._storage.set_trial_user_attr(trial._trial_id, schema.TRIAL_PREDICTION, record)
        return params

    def _decide(
        self, study: Study, trial: FrozenTrial, method_distribution: BaseDistribution | None
    ) -> Decision:
        policy = self._search_policy(study)
        methods = None
        if isinstance(method_distribution, CategoricalDistribution):
            methods = [m for m in method_distribution.choices if m in self._space.methods]
        chars, info = self._context(study)
        if policy.hands_over(trial.number, chars):  # the study's history is not needed
            observations = Observations(
                self._objectives(study), methods=methods, number=trial.number
            )
        else:
            observations = self._observations(study, trial, methods)
        rng = self._rng if self._seed is None else np.random.default_rng([self._seed, trial.number])
        key = (study._study_id, study.study_name)
        decision = policy.decide(key, chars, info, observations, rng)
        recommendation = policy.recommendation(key)
        if recommendation is not None and schema.STUDY_RECOMMENDATION not in study.user_attrs:
            study.set_user_attr(schema.STUDY_RECOMMENDATION, recommendation.to_dict())
        return decision

    # --- pickling --------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_objective"] = None  # holds a loaded model; the study attributes suffice
        if self._objective is not None and self._characteristics is None:
            state["_characteristics"] = self._objective.characteristics
            state["_model_info"] = self._objective.loaded.info.to_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def meta_space(space: PEFTSearchSpace) -> PEFTSearchSpace:
    """The space the meta-model works in: every method's, with ``space``'s own ranges, when
    ``space`` only leaves some methods out (the objective's choices of ``method`` restrict
    the proposals, and the shipped prior, trained on every method, stays usable); else
    ``space`` itself."""
    own = {s.name: s for s in space.specs}
    specs = [own.get(s.name, s) for s in default_specs()]
    full = PEFTSearchSpace(specs=specs)
    restricted = PEFTSearchSpace(methods=space.methods, specs=specs)
    if restricted.distributions() == space.distributions():
        return full
    return space
