"""The shipped prior: a MetaPEFTSystem trained on the PEFT meta-dataset.

``studies/prior/`` in the repository holds it; a wheel installs a copy in
``<prefix>/share/metapeft-optuna/prior``. ``metapeft prior train`` folds a user's own
storages into it and writes the user's prior (``$XDG_DATA_HOME/metapeft-optuna/prior``,
by default ``~/.local/share/...``), which is used from then on. ``METAPEFT_PRIOR`` points
elsewhere, and ``METAPEFT_PRIOR=none`` disables every prior.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from ..errors import ConfigError, MetaLearningError
from ..training.search_space import PEFTSearchSpace
from .experience import ExperienceBuffer
from .persistence import EXPERIENCE_FILE, META_FILE
from .system import MetaPEFTSystem

ENV_VAR = "METAPEFT_PRIOR"
REPOSITORY_PRIOR = Path(__file__).resolve().parents[2] / "studies" / "prior"
INSTALLED_PRIOR = Path(sys.prefix) / "share" / "metapeft-optuna" / "prior"
META_DATASET = Path(__file__).resolve().parents[2] / "studies" / "meta_dataset_v2.jsonl"


def user_prior_path() -> Path:
    """Where ``metapeft prior train`` writes by default: the user's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "metapeft-optuna" / "prior"


def prior_path() -> Path | None:
    """Where the default prior is: ``METAPEFT_PRIOR``, else the user's prior, else the
    shipped one; None when there is none (or it is disabled).

    Raises:
        ConfigError: ``METAPEFT_PRIOR`` names a folder without a saved meta-model.
    """
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting.lower() in {"none", "off", "0"}:
        return None
    if setting:
        path = Path(setting).expanduser()
        if not (path / META_FILE).is_file():
            raise ConfigError(
                f"{ENV_VAR}={setting}: no {META_FILE} there; name a folder written by "
                f"`metapeft prior train`, or set {ENV_VAR}=none for no prior."
            )
        return path
    candidates = [user_prior_path(), REPOSITORY_PRIOR, INSTALLED_PRIOR]
    return next((p for p in candidates if (p / META_FILE).is_file()), None)


def load_prior(search_space: PEFTSearchSpace | None = None) -> MetaPEFTSystem | None:
    """The default prior for ``search_space``: None, with a warning, when it is absent,
    unreadable or trained for another space (a sampler then starts cold).

    Raises:
        MetaLearningError: The prior ``METAPEFT_PRIOR`` names cannot be used.
    """
    path = prior_path()
    if path is None:
        return None
    try:
        return MetaPEFTSystem.load(path, search_space)
    except MetaLearningError as exc:
        if os.environ.get(ENV_VAR, "").strip():
            raise  # the user named this prior: say so, do not start cold silently
        warnings.warn(f"the prior at {path} is not used (a cold start): {exc}", stacklevel=2)
        return None


def prior_experience() -> ExperienceBuffer | None:
    """The experience the default prior was trained on (learning curves included), or
    None when there is no prior."""
    path = prior_path()
    if path is None or not (path / EXPERIENCE_FILE).is_file():
        return None
    return ExperienceBuffer.from_storages([str(path / EXPERIENCE_FILE)])


def base_experience() -> ExperienceBuffer:
    """What a new prior starts from: the default prior's experience, else the
    repository's meta-dataset, else nothing."""
    experience = prior_experience()
    if experience is not None:
        return experience
    if META_DATASET.is_file():
        return ExperienceBuffer.from_storages([str(META_DATASET)])
    return ExperienceBuffer()
