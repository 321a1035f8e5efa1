"""A study's results where optuna-dashboard shows them: every trial's adapter and learning
curve as Optuna artifacts, and markdown notes on the study (the recommendation, its
reasoning, the most similar past tasks, the zero-shot baseline) and on every trial (its
phase, predicted against measured values, its settings).

Artifacts are stored with Optuna's artifact API (``optuna.artifacts``), notes with
optuna-dashboard's note API (``optuna_dashboard.save_note``); file names come from trial
ids, never from user-chosen study names.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import optuna

from .. import schema
from ..atomic import atomic_path

TRIAL_ARTIFACTS = "artifacts"  # trial user attribute: {file name: artifact id}


# --- artifacts ---------------------------------------------------------------------------
class AtomicFileSystemArtifactStore(optuna.artifacts.FileSystemArtifactStore):
    """Optuna's file-system artifact store, each artifact written to a temporary name and
    renamed: a process killed while it uploads leaves no truncated artifact.

    Example:
        >>> import tempfile, io
        >>> store = AtomicFileSystemArtifactStore(tempfile.mkdtemp())
        >>> store.write("a1", io.BytesIO(b"weights"))
        >>> store.open_reader("a1").read()
        b'weights'
    """

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        # _get_filepath is Optuna's own check that the id names a file in the store.
        with atomic_path(self._get_filepath(artifact_id)) as tmp, open(tmp, "wb") as fh:
            shutil.copyfileobj(content_body, fh)


def upload_adapter(
    store: optuna.artifacts.FileSystemArtifactStore, trial: optuna.Trial, adapter_dir: Path
) -> dict[str, str]:
    """Upload every file of a saved adapter as an artifact of ``trial``.

    Returns:
        ``{file name: artifact id}`` (also recorded as the trial's ``artifacts`` user
        attribute, with the learning-curve plot's).
    """
    ids = {}
    for path in sorted(Path(adapter_dir).iterdir()):
        if path.is_file():
            ids[path.name] = optuna.artifacts.upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=trial
            )
    return ids


def upload_curve_plot(
    store: optuna.artifacts.FileSystemArtifactStore,
    trial: optuna.Trial,
    curve: Sequence[Mapping[str, float]],
) -> dict[str, str]:
    """Plot the trial's learning curve (training and validation loss, validation metric,
    by step) and upload it as ``learning-curve-<trial id>.png``."""
    if not curve:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in curve]
    fig, loss_axis = plt.subplots(figsize=(5.5, 3.4))
    loss_axis.plot(steps, [p["train_loss"] for p in curve], "o-", label="train loss")
    loss_axis.plot(steps, [p["val_loss"] for p in curve], "s-", label="validation loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss (nats per answer token)")
    metric_axis = loss_axis.twinx()
    metric_axis.plot(steps, [p["val_metric"] for p in curve], "^--", color="tab:green")
    metric_axis.set_ylabel("validation metric", color="tab:green")
    metric_axis.set_ylim(0, 1)
    loss_axis.legend(fontsize=8, loc="upper right")
    loss_axis.set_title(f"trial {trial.number}: learning curve", fontsize=10)
    fig.tight_layout()
    name = f"learning-curve-{trial._trial_id}.png"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        artifact = optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png"
        )
    return {name: artifact}


def download_adapter(
    store: optuna.artifacts.FileSystemArtifactStore, trial: optuna.trial.FrozenTrial, out: Path
) -> Path:
    """Write the adapter files uploaded by :func:`upload_adapter` for ``trial`` into
    ``out``.

    Raises:
        ConfigError: The trial has no adapter artifacts.
    """
    from ..errors import ConfigError

    files = {
        name: artifact
        for name, artifact in (trial.user_attrs.get(TRIAL_ARTIFACTS) or {}).items()
        if not name.startswith("learning-curve-")
    }
    if not files:
        raise ConfigError(
            f"trial {trial.number} has no adapter artifacts (it ran without an artifact "
            "store, failed or was pruned); export a completed trial of a study run with "
            "artifacts."
        )
    out.mkdir(parents=True, exist_ok=True)
    for name, artifact in files.items():
        optuna.artifacts.download_artifact(
            artifact_store=store, file_path=str(out / name), artifact_id=artifact
        )
    return out


# --- notes -------------------------------------------------------------------------------
def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return (
            f"{value:.{digits}g}"
            if abs(value) < 1e-3 or abs(value) >= 1e4
            else f"{value:.{digits}f}"
        )
    return str(value)


def measured_text(metrics: Mapping[str, Any], name: str) -> str:
    """``"0.812 ± 0.020"``: a measured metric with its standard error (``<name>_se``)
    where there is one; ``"-"`` when it was not measured."""
    value = metrics.get(name)
    if value is None:
        return "-"
    se = metrics.get(f"{name}_se")
    text = f"{value:.3f}" if name in schema.QUALITY_METRICS else f"{value:.1f}"
    return f"{text} ± {se:.3f}" if se is not None and math.isfinite(se) else text


def _predicted_text(prediction: Mapping[str, Any], name: str) -> str:
    value = prediction.get(name)
    if value is None:
        return "unknown"
    if f"{name}_std" in prediction:
        return f"{value:.3f} ± {prediction[f'{name}_std']:.3f}"
    spread = prediction.get(f"{name}_log_std")
    if spread is None:
        return f"{value:.1f}"
    # A log-scale prediction: the one-standard-deviation interval in the metric's units.
    return f"{value:.1f} ({value * math.exp(-spread):.1f}-{value * math.exp(spread):.1f})"


def study_note(attrs: Mapping[str, Any]) -> str:
    """The study's note, in markdown, from its user attributes."""
    task = attrs.get(schema.STUDY_TASK) or {}
    model = attrs.get(schema.STUDY_MODEL) or {}
    lines = [f"## {task.get('name', 'PEFT study')} on {model.get('name', 'a model')}", ""]
    baseline = attrs.get(schema.STUDY_BASELINE)
    if baseline:
        quality = [q for q in schema.QUALITY_METRICS if baseline.get(q) is not None]
        shown = ", ".join(f"{q} {measured_text(baseline, q)}" for q in quality)
        lines += [
            f"**Zero-shot baseline** (the untuned model, {baseline.get('test_examples', '?')} "
            f"test examples): {shown}",
            "",
        ]
    recommendation = attrs.get(schema.STUDY_RECOMMENDATION)
    if recommendation:
        lines += [
            f"**Meta-model recommendation:** {recommendation['method']} "
            f"(confidence {recommendation['confidence']:.2f})",
            "",
            recommendation["reasoning"],
            "",
        ]
        similar = recommendation.get("similar_tasks") or []
        if similar:
            lines += [
                "**Most similar past tasks**",
                "",
                "| task | model | trials | best method | best quality | distance |",
                "|---|---|---:|---|---:|---:|",
            ]
            for s in similar:
                best = (s.get("best_quality") or {}).get(s.get("best_method"), float("nan"))
                lines.append(
                    f"| {s.get('name')} | {s.get('model')} | {s.get('trials')} | "
                    f"{s.get('best_method')} | {best:.3f} | {s.get('distance', float('nan')):.2f} |"
                )
            lines.append("")
    else:
        lines += ["No meta-model recommendation (another sampler, or a cold start).", ""]
    return "\n".join(lines)


def trial_note(
    trial_attrs: Mapping[str, Any], measured: Mapping[str, Any], objectives: Sequence[str]
) -> str:
    """A finished trial's note, in markdown: its phase and the sampler's reason (from its
    user attributes), each objective predicted against ``measured`` (metrics by name,
    with ``<name>_se`` standard errors), and its settings."""
    prediction = trial_attrs.get(schema.TRIAL_PREDICTION) or {}
    metrics = measured
    method = trial_attrs.get(schema.TRIAL_METHOD, "?")
    lines = [f"**Phase:** {prediction.get('phase', 'not the meta sampler')}"]
    if prediction.get("reason"):
        lines += ["", prediction["reason"]]
    lines += ["", "| objective | predicted | measured |", "|---|---:|---:|"]
    for name in objectives:
        lines.append(
            f"| {name} | {_predicted_text(prediction, name)} | {measured_text(metrics, name)} |"
        )
    lines += ["", f"**Settings ({method})**", "", "| parameter | value |", "|---|---|"]
    for key, value in (trial_attrs.get(schema.TRIAL_HYPERPARAMETERS) or {}).items():
        if key != "init_text":
            lines.append(f"| {key} | {_number(value)} |")
    return "\n".join(lines) + "\n"


def save_note(study_or_trial: optuna.Study | optuna.Trial, body: str) -> None:
    """Write ``body`` as the note optuna-dashboard shows on the study or trial page."""
    import optuna_dashboard

    optuna_dashboard.save_note(study_or_trial, body)
