"""Leave-one-task-out evaluation of the meta-model (surrogate and method selection)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import spearmanr

from .. import schema
from ..training.search_space import PEFTSearchSpace
from .experience import ExperienceBuffer
from .features import experience_arrays
from .peft_experience import PEFTExperience
from .recommendation import method_vote
from .surrogate import PEFTSurrogate, SurrogateConfig
from .system import MetaPEFTSystem


@dataclass
class HeldOutTask:
    """What the meta-model, trained without this task, says about it.

    Quality is the task's own quality objective (accuracy, or val_loss for a task its
    study scored by val_loss).

    Example:
        >>> t = HeldOutTask("iris", 40, 0.5, 0.1, 0.6, 0.2, "lora", "lora", "dora")
        >>> t.selected_method == t.best_method
        True
    """

    task: str
    trials: int
    spearman: float  # predicted vs actual quality, zero-shot, task features on
    spearman_agnostic: float  # the same surrogate with task features zeroed
    spearman_adapted: float  # after adapting on the first `shots` trials (scored on the rest)
    spearman_adapted_agnostic: float
    selected_method: str
    best_method: str  # "" when every trial of the task has the same quality (no best)
    majority_method: str
    selected_probability: float = float("nan")  # the calibrated selector's confidence
    second_method: str = ""  # the selector's runner-up
    majority_second: str = ""  # the method second most often best among the training tasks
    quality: str = "accuracy"  # the quality objective scored
    spearman_memory: float = float("nan")  # zero-shot, task-aware: peak memory
    spearman_time: float = float("nan")  # zero-shot, task-aware: training seconds
    # Methods whose best trial is within noise of the best method's (tied_best_methods)
    tied_methods: tuple[str, ...] = ()
    # What a recommendation follows: selector x surrogate (recommendation.method_vote)
    recommended_method: str = ""
    recommended_second: str = ""


@dataclass
class LeaveOneTaskOut:
    """Per-task results and their means.

    Example:
        >>> held = HeldOutTask("a", 9, 0.4, 0.2, 0.5, 0.3, "lora", "lora", "dora")
        >>> report = LeaveOneTaskOut([held])
        >>> report.summary()["selection_top1"], report.summary()["majority_top1"]
        (1.0, 0.0)
    """

    tasks: list[HeldOutTask] = field(default_factory=list)
    shots: int = 5

    def summary(self) -> dict[str, float]:
        def mean(name: str) -> float:
            values = [v for t in self.tasks if np.isfinite(v := getattr(t, name))]
            return float(np.mean(values)) if values else float("nan")

        ranked = [t for t in self.tasks if t.best_method]
        return {
            "tasks": len(self.tasks),
            "tasks_with_a_best_method": len(ranked),
            "spearman": mean("spearman"),
            "spearman_agnostic": mean("spearman_agnostic"),
            "spearman_adapted": mean("spearman_adapted"),
            "spearman_adapted_agnostic": mean("spearman_adapted_agnostic"),
            **method_shares(ranked, "selection", "selected_method", "second_method"),
            **method_shares(ranked, "majority", "majority_method", "majority_second"),
            **method_shares(ranked, "recommendation", "recommended_method", "recommended_second"),
            "selected_probability": mean("selected_probability"),
            "spearman_memory": mean("spearman_memory"),
            "spearman_time": mean("spearman_time"),
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "tasks": [asdict(t) for t in self.tasks]}


def method_shares(tasks: list[HeldOutTask], name: str, first: str, second: str) -> dict[str, float]:
    """Shares of ``tasks`` whose best method is the ``first`` pick (``{name}_top1``) or one
    of the first two (``{name}_top2``); ``..._within_noise``: counting any method tied
    with the best (:func:`tied_best_methods`) a hit. NaN without tasks."""

    def share(hit) -> float:
        return sum(map(hit, tasks)) / len(tasks) if tasks else float("nan")

    def picks(t: HeldOutTask) -> tuple[str, str]:
        return getattr(t, first), getattr(t, second)

    return {
        f"{name}_top1": share(lambda t: picks(t)[0] == t.best_method),
        f"{name}_top2": share(lambda t: t.best_method in picks(t)),
        f"{name}_top1_within_noise": share(lambda t: picks(t)[0] in t.tied_methods),
        f"{name}_top2_within_noise": share(lambda t: bool(set(picks(t)) & set(t.tied_methods))),
    }


def tied_best_methods(trials: list[PEFTExperience], z: float = 1.96) -> tuple[str, ...]:
    """The methods whose best trial on a task is not measurably worse than the best
    method's: quality scores at most ``z`` standard errors of their difference apart
    (``<quality>_se``; a trial without one counts as exact). A single best trial on a few
    hundred test examples often beats the runner-up method by less than its noise, and
    calling only it "the best method" would rank trials by noise. Empty when every trial
    has the same quality.

    Example:
        >>> from metapeft_optuna.peft import PEFTMethod
        >>> from metapeft_optuna.tasks import TaskCharacteristics
        >>> chars = TaskCharacteristics(64, 12, 30, "algorithmic", "classification", 0.4)
        >>> def trial(method, accuracy):
        ...     metrics = {"accuracy": accuracy, "accuracy_se": 0.02}
        ...     return PEFTExperience(chars, PEFTMethod(method), {}, metrics)
        >>> tied_best_methods([trial("lora", 0.80), trial("dora", 0.78),
        ...                    trial("prefix_tuning", 0.60)])
        ('lora', 'dora')
    """
    best: dict[str, tuple[float, float]] = {}
    for e in trials:
        score = e.quality
        if score is None:
            continue
        se = e.performance_metrics.get(f"{e.quality_metric}_se") or 0.0
        method = e.method_used.value
        if method not in best or score > best[method][0]:
            best[method] = (score, se)
    if len({score for score, _ in best.values()}) < 2:
        return ()
    top, top_se = max(best.values())
    return tuple(
        m
        for m, (score, se) in sorted(best.items(), key=lambda kv: -kv[1][0])
        if top - score <= z * float(np.hypot(top_se, se))
    )


def _rho(predicted: np.ndarray, actual: np.ndarray) -> float:
    if len(actual) < 3 or np.ptp(actual) == 0 or np.ptp(predicted) == 0:
        return float("nan")
    return float(spearmanr(predicted, actual).correlation)


def leave_one_task_out(
    buffer: ExperienceBuffer,
    search_space: PEFTSearchSpace | None = None,
    config: SurrogateConfig | None = None,
    shots: int = 5,
    tasks: list[str] | None = None,
) -> LeaveOneTaskOut:
    """For each source task: train on the others, predict it.

    Reports, per held-out task, the Spearman correlation of predicted and actual quality
    (the task's quality objective; zero-shot, and after adapting on its first ``shots``
    trials), the same for a task-agnostic surrogate (task features zeroed), zero-shot
    correlations for peak memory and training time, and whether the task's best method
    is the method selector's first (or one of its first two) choices, next to the
    majority-method baseline (the methods most often best among the training tasks);
    tasks whose trials all have the same quality have no best method and are left out of
    those shares.

    Example:
        >>> report = leave_one_task_out(ExperienceBuffer())
        >>> report.summary()["tasks"]
        0
    """
    space = search_space or PEFTSearchSpace()
    config = config or SurrogateConfig()
    groups = buffer.by_task()
    report = LeaveOneTaskOut(shots=shots)
    for key in sorted(groups):
        held = groups[key]
        name = held[0].task_name
        if tasks is not None and name not in tasks:
            continue
        train = ExperienceBuffer(e for e in buffer.complete() if e.source_key != key)
        if not train.by_task():
            continue
        system = MetaPEFTSystem(space, surrogate_config=config).fit(train)
        agnostic = PEFTSurrogate(
            space, SurrogateConfig(**{**asdict(config), "task_features": False})
        ).fit(train)
        contexts, configs, targets = experience_arrays(held, space)
        quality = held[0].quality_objective or "accuracy"
        column = schema.METRICS.index(quality)
        actual = targets[:, column]
        rho = {}
        for label, surrogate in (("aware", system.surrogate), ("agnostic", agnostic)):
            mean, _ = surrogate.predict(contexts[0], configs)
            rho[label] = _rho(mean[:, column], actual)
            if label == "aware":
                for cost in schema.COST_OBJECTIVES:
                    where = schema.METRICS.index(cost)
                    rho[cost] = _rho(mean[:, where], targets[:, where])
            rho[label + "_adapted"] = float("nan")
            if len(held) > shots:  # a task still being built may not have more
                adapted = surrogate.adapt(contexts[0], configs[:shots], targets[:shots])
                mean, _ = adapted.predict(contexts[0], configs[shots:])
                rho[label + "_adapted"] = _rho(mean[:, column], actual[shots:])
        probabilities = system.method_probabilities(contexts[0])
        ranking = [system.methods[i] for i in np.argsort(-probabilities)]
        voted = quality if system.surrogate.known_targets_[column] else "accuracy"
        *_, combined = method_vote(system, contexts[0], np.random.default_rng(0), voted)
        recommended = [system.methods[i] for i in np.argsort(-combined)]
        best = max(held, key=lambda e: e.quality).method_used.value if np.ptp(actual) else ""
        common = Counter(s["best_method"] for s in system.task_summaries_).most_common(2)
        majority, majority_second = common[0][0], common[1][0] if len(common) > 1 else ""
        report.tasks.append(
            HeldOutTask(
                name,
                len(held),
                rho["aware"],
                rho["agnostic"],
                rho["aware_adapted"],
                rho["agnostic_adapted"],
                ranking[0],
                best,
                majority,
                float(probabilities.max()),
                ranking[1] if len(ranking) > 1 else "",
                majority_second,
                quality,
                rho["peak_memory_mb"],
                rho["train_seconds"],
                tied_best_methods(held),
                recommended[0],
                recommended[1] if len(recommended) > 1 else "",
            )
        )
    return report
