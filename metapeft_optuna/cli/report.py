"""What ``metapeft tune`` prints and draws: a line per finished trial, the Pareto front as
a table that fits 100 columns (settings in a block below it), and 2-D Pareto panels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import schema
from ..atomic import atomic_write_with

WIDTH = 100  # the terminal width every table and line fits


def quality_text(metrics: dict, name: str) -> str:
    """``"0.812 ± 0.020"`` for a quality metric with its standard error (val_loss also
    shows perplexity)."""
    from ..training.dashboard import measured_text  # training imports MLX: not at CLI start

    text = measured_text(metrics, name)
    if name == "val_loss" and text != "-" and metrics.get("perplexity") is not None:
        text += f" (ppl {metrics['perplexity']:.2f})"
    return text


def _measured(trial, objectives: Sequence[str]) -> dict:
    values = schema.metrics_by_name(objectives, trial.values)
    return {**(trial.user_attrs.get(schema.TRIAL_METRICS) or {}), **values}


def _phase(trial) -> str:
    return (trial.user_attrs.get(schema.TRIAL_PREDICTION) or {}).get("phase", "-")


def _cells(trial, objectives: Sequence[str]) -> dict[str, str]:
    """The objective columns of a finished trial, by column title."""
    measured = _measured(trial, objectives)
    cells = {}
    for name in objectives:
        if schema.OBJECTIVE_SPECS[name].quality:
            cells[name] = quality_text(measured, name)
        elif name == "peak_memory_mb":
            cells["peak MB"] = f"{measured[name]:.0f}"
        else:
            cells["train s"] = f"{measured[name]:.1f}"
    return cells


def trial_line(trial, objectives: Sequence[str]) -> str:
    """One finished trial in one line, e.g. ``trial 3 · warm start · lora · accuracy
    0.812 ± 0.020 · 812 MB · 45.1 s``, or why it was pruned or failed."""
    from optuna.trial import TrialState

    head = f"trial {trial.number} · {_phase(trial)} · {trial.params.get('method', '?')}"
    if trial.state == TrialState.COMPLETE:
        cells = _cells(trial, objectives)
        parts = [
            f"{k} {v}" if k in objectives else f"{v} {k.split()[-1]}" for k, v in cells.items()
        ]
        line = " · ".join([head, *parts])
    elif trial.state == TrialState.PRUNED:
        # Multi-objective studies report curves as a user attribute, not intermediate values.
        curve = trial.user_attrs.get(schema.TRIAL_CURVE) or [{}]
        step = trial.last_step if trial.last_step is not None else curve[-1].get("step", "?")
        line = f"{head} · pruned after step {step}"
        if reason := trial.user_attrs.get(schema.TRIAL_PRUNE_REASON):
            line += f": {reason}"
    else:
        reason = trial.user_attrs.get(schema.TRIAL_FAIL_REASON) or trial.state.name.lower()
        line = f"{head} · failed: {reason}"
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


class TrialPrinter:
    """An Optuna callback printing :func:`trial_line` for every finished trial, above the
    progress bar when there is one."""

    def __init__(self, objectives: Sequence[str]):
        self.objectives = tuple(objectives)

    def __call__(self, study, trial) -> None:
        from tqdm import tqdm

        tqdm.write(trial_line(trial, self.objectives))


def pareto_rows(study, objectives: Sequence[str]) -> tuple[list[dict[str, object]], list[str]]:
    """The study's Pareto front, best quality first: table rows (trial, phase, method,
    objectives; quality with its standard error) and, per row, its settings line."""
    quality = schema.quality_objective(objectives)
    order = schema.OBJECTIVE_SPECS[quality or objectives[0]]
    key = objectives.index(order.name)
    rows, settings = [], []
    for trial in sorted(study.best_trials, key=lambda t: order.sign * t.values[key]):
        rows.append(
            {
                "trial": trial.number,
                "phase": _phase(trial),
                "method": trial.params.get("method"),
                **_cells(trial, objectives),
            }
        )
        hp = trial.user_attrs.get(schema.TRIAL_HYPERPARAMETERS, {})
        settings.append(
            f"trial {trial.number}: "
            + ", ".join(f"{k}={_short(v)}" for k, v in hp.items() if k != "init_text")
        )
    return rows, settings


def baseline_line(study, objectives: Sequence[str]) -> str | None:
    """The zero-shot baseline of the study's quality objective, as one line."""
    baseline = study.user_attrs.get(schema.STUDY_BASELINE)
    quality = schema.quality_objective(objectives)
    if not baseline or quality is None or baseline.get(quality) is None:
        return None
    return (
        f"zero-shot baseline (untuned model, {baseline.get('test_examples', '?')} test "
        f"examples): {quality} {quality_text(baseline, quality)}"
    )


def wrap(text: str, indent: str = "  ") -> list[str]:
    """``text`` broken at commas into lines of at most :data:`WIDTH` columns."""
    import textwrap

    return textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_long_words=True)


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def save_pareto_plot(study, path: Path, objectives: Sequence[str]) -> Path:
    """Quality against each cost objective, one panel each, every trial coloured by
    method and the Pareto front (of all objectives) circled and numbered.

    Raises:
        ValueError: ``objectives`` has no quality objective or no cost objective.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    quality = schema.quality_objective(objectives)
    costs = [o for o in objectives if o in schema.COST_OBJECTIVES]
    if quality is None or not costs:
        raise ValueError(f"a Pareto plot needs a quality and a cost objective, not {objectives}")
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials}
    methods = sorted({t.params.get("method", "?") for t in trials})
    colours = dict(zip(methods, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(1, len(costs), figsize=(5.2 * len(costs), 4.2), squeeze=False)
    for ax, cost in zip(axes[0], costs):
        for method in methods:
            points = [
                schema.metrics_by_name(objectives, t.values)
                for t in trials
                if t.params.get("method", "?") == method
            ]
            ax.scatter(
                [p[cost] for p in points],
                [p[quality] for p in points],
                color=colours[method],
                label=method,
                s=28,
            )
        for t in trials:
            if t.number in front:
                values = schema.metrics_by_name(objectives, t.values)
                ax.scatter(values[cost], values[quality], s=140, facecolors="none", edgecolors="k")
                ax.annotate(
                    str(t.number),
                    (values[cost], values[quality]),
                    xytext=(6, 4),
                    textcoords="offset points",
                    fontsize=8,
                )
        ax.set_xscale("log")
        ax.set_xlabel(
            {"peak_memory_mb": "peak memory (MB)", "train_seconds": "training time (s)"}[cost]
        )
        ax.set_ylabel(quality)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, title="method (front circled)")
    fig.suptitle(f"{study.study_name}: {len(trials)} trials", fontsize=10)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
