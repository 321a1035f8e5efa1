"""``export_trial``: a study's trial as files that mlx-lm, or ``metapeft generate``, runs."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import schema
from ..errors import ConfigError
from ..models import load_model
from ..models.export import save_mlx_lm_model
from ..peft import load_adapter, save_adapter, save_mlx_lm_adapter
from .dashboard import download_adapter

MLX_LM_METHODS = ("lora", "dora", "adalora")  # weight updates mlx-lm applies


@dataclass(frozen=True)
class Export:
    """What :func:`export_trial` wrote.

    Attributes:
        trial: The trial's number.
        method: Its PEFT method.
        model: The base model as an mlx-lm model directory.
        adapter: The adapter: mlx-lm's LoRA/DoRA format for LoRA, DoRA and AdaLoRA,
            this package's format (same two files) for the prompt methods.
        fused: The model with the adapter merged (``fuse=True``, weight-update methods).
    """

    trial: int
    method: str
    model: Path
    adapter: Path
    fused: Path | None = None

    def commands(self, prompt: str = "...") -> list[str]:
        """Shell commands that generate with the export."""
        commands = []
        if self.method in MLX_LM_METHODS:
            commands.append(
                f"mlx_lm generate --model {self.model} --adapter-path {self.adapter} "
                f"--prompt {prompt!r}"
            )
        if self.fused is not None:
            commands.append(f"mlx_lm generate --model {self.fused} --prompt {prompt!r}")
        commands.append(
            f"metapeft generate --model {self.model} --adapter-path {self.adapter} "
            f"--prompt {prompt!r}"
        )
        return commands


def select_trial(
    study: optuna.Study, trial: int | str = "best", objective: str | None = None
) -> FrozenTrial:
    """A completed trial: by number, or ``"best"`` along ``objective`` (default: the
    study's quality objective, else its first).

    Raises:
        ConfigError: No such trial, a trial that did not complete, or an objective the
            study does not have.
    """
    objectives = schema.study_objectives(study)
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and all(math.isfinite(v) for v in t.values)
    ]
    if trial != "best":
        found = [t for t in study.get_trials(deepcopy=False) if str(t.number) == str(trial)]
        if not found:
            raise ConfigError(
                f"study {study.study_name!r} has no trial {trial} "
                f"(trials 0-{len(study.trials) - 1}); pass a trial number or 'best'."
            )
        if found[0] not in done:
            raise ConfigError(
                f"trial {trial} of study {study.study_name!r} is {found[0].state.name.lower()}, "
                "not complete; export a completed trial."
            )
        return found[0]
    name = objective or schema.quality_objective(objectives) or objectives[0]
    if name not in objectives:
        raise ConfigError(
            f"study {study.study_name!r} has objectives {list(objectives)}, not {name!r}."
        )
    if not done:
        raise ConfigError(f"study {study.study_name!r} has no completed trial to export.")
    sign = schema.OBJECTIVE_SPECS[name].sign
    return min(done, key=lambda t: sign * schema.metrics_by_name(objectives, t.values)[name])


def export_trial(
    study: optuna.Study,
    artifact_store: optuna.artifacts.FileSystemArtifactStore,
    out: str | Path,
    *,
    trial: int | str = "best",
    objective: str | None = None,
    fuse: bool = False,
    model: str | None = None,
) -> Export:
    """Write a trial's base model and adapter (and with ``fuse``, the merged model).

    Args:
        study: A study run with an artifact store (``PEFTObjective(artifact_store=)``,
            ``metapeft tune``'s default).
        artifact_store: That store.
        out: Folder to write ``model/``, ``adapter/`` and ``fused/`` into.
        trial: A trial number, or ``"best"`` along ``objective``.
        objective: For ``"best"`` (default: the study's quality objective).
        fuse: Also write the model with the adapter merged (LoRA, DoRA, AdaLoRA).
        model: The model spec the study fine-tuned (default: the one it recorded).

    Raises:
        ConfigError: See :func:`select_trial`; a trial without adapter artifacts; or
            ``fuse`` with a method that has no weights to merge.

    Example:
        >>> # after `metapeft tune ... --storage sqlite:///studies/s.db`:
        >>> # export_trial(optuna.load_study(study_name=..., storage=...),
        >>> #              optuna.artifacts.FileSystemArtifactStore("studies/artifacts"),
        >>> #              "exported").commands()
    """
    chosen = select_trial(study, trial, objective)
    method = chosen.params["method"]
    if fuse and method not in MLX_LM_METHODS:
        raise ConfigError(
            f"trial {chosen.number} is {method}: it adds virtual tokens or prefixes, there "
            "are no weights to merge; export it without --fuse."
        )
    spec = model or (study.user_attrs.get(schema.STUDY_MODEL) or {}).get("name")
    if not spec:
        raise ConfigError(f"study {study.study_name!r} recorded no model; pass the model spec.")
    out = Path(out)
    loaded = load_model(spec)
    base = save_mlx_lm_model(loaded.model, loaded.tokenizer, out / "model")
    with tempfile.TemporaryDirectory() as tmp:
        adapter = load_adapter(loaded.model, download_adapter(artifact_store, chosen, Path(tmp)))
    adapter.eval()
    write = save_mlx_lm_adapter if method in MLX_LM_METHODS else save_adapter
    adapter_dir = write(adapter, out / "adapter")
    fused = None
    if fuse:
        fused = save_mlx_lm_model(adapter.fuse(), loaded.tokenizer, out / "fused")
    return Export(chosen.number, method, base, adapter_dir, fused)
