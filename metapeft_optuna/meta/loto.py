"""Leave-one-task-out evaluation of the meta-model (surrogate and method selection)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import spearmanr

from ..training.search_space import PEFTSearchSpace
from .experience import ExperienceBuffer
from .features import experience_arrays
from .surrogate import PEFTSurrogate, SurrogateConfig
from .system import MetaPEFTSystem


@dataclass
class HeldOutTask:
    """What the meta-model, trained without this task, says about it.

    Example:
        >>> t = HeldOutTask("iris", 40, 0.5, 0.1, 0.6, 0.2, "lora", "lora", "dora")
        >>> t.selected_method == t.best_method
        True
    """

    task: str
    trials: int
    spearman: float  # predicted vs actual accuracy, zero-shot, task features on
    spearman_agnostic: float  # the same surrogate with task features zeroed
    spearman_adapted: float  # after adapting on the first `shots` trials (scored on the rest)
    spearman_adapted_agnostic: float
    selected_method: str
    best_method: str  # "" when every trial of the task has the same accuracy (no best)
    majority_method: str
    selected_probability: float = float("nan")  # the calibrated selector's confidence


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

        def share(hit) -> float:
            return sum(map(hit, ranked)) / len(ranked) if ranked else float("nan")

        return {
            "tasks": len(self.tasks),
            "tasks_with_a_best_method": len(ranked),
            "spearman": mean("spearman"),
            "spearman_agnostic": mean("spearman_agnostic"),
            "spearman_adapted": mean("spearman_adapted"),
            "spearman_adapted_agnostic": mean("spearman_adapted_agnostic"),
            "selection_top1": share(lambda t: t.selected_method == t.best_method),
            "majority_top1": share(lambda t: t.majority_method == t.best_method),
            "selected_probability": mean("selected_probability"),
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "tasks": [asdict(t) for t in self.tasks]}


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

    Reports, per held-out task, the Spearman correlation of predicted and actual accuracy
    (zero-shot, and after adapting on its first ``shots`` trials), the same for a
    task-agnostic surrogate (task features zeroed), and whether the method selector's
    top method is the task's best-accuracy method, next to the majority-method baseline
    (the method most often best among the training tasks); tasks whose trials all have
    the same accuracy have no best method and are left out of those two shares.

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
        actual = targets[:, 0]
        rho = {}
        for label, surrogate in (("aware", system.surrogate), ("agnostic", agnostic)):
            mean, _ = surrogate.predict(contexts[0], configs)
            rho[label] = _rho(mean[:, 0], actual)
            adapted = surrogate.adapt(contexts[0], configs[:shots], targets[:shots])
            mean, _ = adapted.predict(contexts[0], configs[shots:])
            rho[label + "_adapted"] = _rho(mean[:, 0], actual[shots:])
        probabilities = system.method_probabilities(contexts[0])
        best = max(held, key=lambda e: e.quality).method_used.value if np.ptp(actual) else ""
        majority = Counter(s["best_method"] for s in system.task_summaries_).most_common(1)[0][0]
        report.tasks.append(
            HeldOutTask(
                name,
                len(held),
                rho["aware"],
                rho["agnostic"],
                rho["aware_adapted"],
                rho["agnostic_adapted"],
                system.methods[int(np.argmax(probabilities))],
                best,
                majority,
                float(probabilities.max()),
            )
        )
    return report
