"""Saving and loading a :class:`~metapeft_optuna.meta.MetaPEFTSystem` (a directory)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten
from optuna.distributions import distribution_to_json, json_to_distribution

from .. import __version__
from ..atomic import atomic_directory
from ..errors import MetaLearningError
from ..training.search_space import PEFTSearchSpace
from .features import Standardizer
from .selection import SelectorCalibration
from .surrogate import PEFTSurrogate, SurrogateConfig

if TYPE_CHECKING:
    from .system import MetaPEFTSystem

FORMAT_VERSION = 1
META_FILE = "meta_model.json"
WEIGHTS_FILE = "weights.safetensors"
EXPERIENCE_FILE = "experience.jsonl"


def save_system(system: MetaPEFTSystem, path: str | Path, include_experience: bool = True) -> Path:
    """Save ``system`` to the directory ``path``: ``meta_model.json`` (settings, task
    summaries, the search space's feature names and ranges), ``weights.safetensors`` (surrogate,
    task embedder, method selector; fitted systems only) and ``experience.jsonl``
    (with ``include_experience``), replacing the directory atomically."""
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "methods": system.methods,
        "feature_names": system.search_space.feature_names(),
        "distributions": {
            s.name: json.loads(distribution_to_json(s.distribution))
            for s in system.search_space.specs
        },
        "embedding_dim": system.embedding_dim,
        "seed": system.seed,
        "task_summaries": system.task_summaries_,
        "fitted": system.is_fitted,
        "surrogate_config": asdict(system.surrogate.config),
    }
    arrays: dict[str, mx.array] = {}
    if system.is_fitted:
        surrogate_meta, surrogate_arrays = system.surrogate.state()
        meta["surrogate"] = surrogate_meta
        meta["context_scaler"] = system.context_scaler_.to_dict()
        meta["selector_calibration"] = system.selector_calibration_.to_dict()
        arrays.update({f"surrogate.{k}": v for k, v in surrogate_arrays.items()})
        for name, net in (
            ("task_embedder", system.task_embedder),
            ("method_selector", system.method_selector),
        ):
            arrays.update({f"{name}.{k}": v for k, v in tree_flatten(net.parameters())})
    with atomic_directory(path) as tmp:
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        if arrays:
            mx.save_safetensors(str(tmp / WEIGHTS_FILE), arrays)
        if include_experience:
            system.experience_buffer.export_jsonl(tmp / EXPERIENCE_FILE)
    return Path(path)


def load_system(
    cls: type[MetaPEFTSystem], path: str | Path, search_space: PEFTSearchSpace | None = None
) -> MetaPEFTSystem:
    """Load a system saved by :func:`save_system` as an instance of ``cls``.

    The system keeps the parameter ranges it was trained in, whatever ranges
    ``search_space`` gives: its features are positions in those ranges (a meta-model
    trained on 10-30 steps would read 200 steps as 9.5 of its [0, 1] range). A sampler
    resamples any proposed value outside its study's ranges.

    Raises:
        MetaLearningError: Missing files, a newer format, or a different search space.
    """
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise MetaLearningError(f"{meta_path}: not found; is {path} a saved meta-model?")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetaLearningError(
            f"{meta_path}: not a saved meta-model ({exc}); it may be cut short: retrain it "
            "with `metapeft prior train`."
        ) from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise MetaLearningError(
            f"{path}: format_version {meta['format_version']} is newer "
            f"than this package reads ({FORMAT_VERSION}); upgrade it."
        )
    space = search_space or PEFTSearchSpace(methods=meta["methods"])
    if space.feature_names() != meta["feature_names"]:
        raise MetaLearningError(
            f"{path}: the meta-model was trained for another search "
            "space (its encoded features differ); retrain it with "
            "`metapeft prior train`."
        )
    trained = meta.get("distributions", {})  # absent where saved before ranges were kept
    space = PEFTSearchSpace(
        methods=space.methods,
        specs=[
            replace(s, distribution=json_to_distribution(json.dumps(trained[s.name])))
            if s.name in trained
            else s
            for s in space.specs
        ],
    )
    system = cls(
        space,
        embedding_dim=meta["embedding_dim"],
        surrogate_config=SurrogateConfig(**meta["surrogate_config"]),
        seed=meta["seed"],
    )
    system.task_summaries_ = meta["task_summaries"]
    if (path / EXPERIENCE_FILE).is_file():
        system.experience_buffer.import_jsonl(path / EXPERIENCE_FILE)
    if meta.get("fitted"):
        try:
            arrays = mx.load(str(path / WEIGHTS_FILE))
        except (RuntimeError, ValueError, OSError) as exc:  # missing or cut short
            raise MetaLearningError(
                f"{path / WEIGHTS_FILE}: unreadable ({exc}); retrain the meta-model with "
                "`metapeft prior train`."
            ) from None

        def part(prefix: str) -> dict[str, mx.array]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        system.surrogate = PEFTSurrogate.from_state(meta["surrogate"], part("surrogate."), space)
        system.context_scaler_ = Standardizer.from_dict(meta["context_scaler"])
        # Saved before calibration existed: the raw softmax, as it was then.
        system.selector_calibration_ = SelectorCalibration(**meta.get("selector_calibration", {}))
        system.task_embedder.update(tree_unflatten(list(part("task_embedder.").items())))
        system.method_selector.update(tree_unflatten(list(part("method_selector.").items())))
    return system
