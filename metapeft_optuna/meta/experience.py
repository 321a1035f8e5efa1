"""``ExperienceBuffer``: earlier fine-tunes (:class:`PEFTExperience`), read from Optuna storages.

The storage *is* the experience: every study whose user attributes carry the task's
characteristics and the model's info (:mod:`metapeft_optuna.schema`) is a source task,
and each of its finished or pruned trials one experience. Buffers read several storages
(the shipped prior plus the user's own), skip the study being optimised, drop
duplicates, and round-trip through JSON Lines so experience can be shared.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import optuna

from ..atomic import atomic_path
from ..errors import MetaLearningError
from .peft_experience import PEFTExperience, read_jsonl
from .storages import experience_from_trial, storage_experiences

__all__ = ["ExperienceBuffer", "PEFTExperience", "experience_from_trial", "read_jsonl"]


class ExperienceBuffer:
    """A de-duplicated collection of :class:`PEFTExperience`, grouped by source task.

    Args:
        experiences: Initial experiences (duplicates by ``uid`` are dropped).

    Example:
        >>> buffer = ExperienceBuffer()
        >>> len(buffer), buffer.task_names()
        (0, [])
    """

    def __init__(self, experiences: Iterable[PEFTExperience] = ()):
        self._items: dict[str, PEFTExperience] = {}
        self.extend(experiences)

    # --- collection ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[PEFTExperience]:
        return iter(self._items.values())

    def add(self, experience: PEFTExperience) -> bool:
        """Add one experience; returns False when it was already present."""
        if experience.uid in self._items:
            return False
        self._items[experience.uid] = experience
        return True

    def extend(self, experiences: Iterable[PEFTExperience]) -> int:
        """Add many; returns how many were new."""
        return sum(self.add(e) for e in experiences)

    def complete(self) -> list[PEFTExperience]:
        """The experiences with final objective values."""
        return [e for e in self if e.complete]

    def by_task(self, complete_only: bool = True) -> dict[str, list[PEFTExperience]]:
        """Experiences grouped by source task (task and model)."""
        groups: dict[str, list[PEFTExperience]] = defaultdict(list)
        for e in self.complete() if complete_only else self:
            groups[e.source_key].append(e)
        return dict(groups)

    def task_names(self) -> list[str]:
        return sorted({e.task_name for e in self})

    def without_task(self, task_name: str) -> ExperienceBuffer:
        """A copy without one task's experiences (leave-one-task-out)."""
        return ExperienceBuffer(e for e in self if e.task_name != task_name)

    def sample(
        self, batch_size: int, rng: np.random.Generator, balanced: bool = True
    ) -> list[PEFTExperience]:
        """Experience replay: ``batch_size`` complete experiences drawn with replacement,
        each source task equally likely when ``balanced`` (so big tasks do not dominate)."""
        groups = list(self.by_task().values())
        if not groups:
            raise MetaLearningError("cannot sample from an empty experience buffer.")
        if not balanced:
            flat = [e for g in groups for e in g]
            return [flat[i] for i in rng.integers(len(flat), size=batch_size)]
        tasks = rng.integers(len(groups), size=batch_size)
        return [groups[t][int(rng.integers(len(groups[t])))] for t in tasks]

    # --- storages ----------------------------------------------------------------------
    @classmethod
    def from_storages(
        cls,
        storages: Sequence[str | optuna.storages.BaseStorage],
        exclude_studies: Sequence[str] = (),
    ) -> ExperienceBuffer:
        """Read every metapeft study of the given storages (URLs, journal paths, objects).

        Args:
            storages: Optuna storage URLs or objects; a path ending in ``.jsonl`` is read
                as a JSON Lines experience export instead.
            exclude_studies: Study names to skip (the study being optimised).
        """
        buffer = cls()
        for storage in storages:
            if isinstance(storage, str | Path) and str(storage).endswith(".jsonl"):
                buffer.extend(read_jsonl(storage))
            else:
                buffer.read_storage(storage, exclude_studies)
        return buffer

    def read_storage(
        self, storage: str | optuna.storages.BaseStorage, exclude_studies: Sequence[str] = ()
    ) -> int:
        """Add the experiences of one storage (:func:`~.storages.storage_experiences`);
        returns how many were new."""
        return self.extend(storage_experiences(storage, exclude_studies))

    # --- JSON Lines ----------------------------------------------------------------------
    def export_jsonl(self, path: str | Path) -> Path:
        """Write every experience as one JSON line (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "w") as fh:
            for experience in self:
                fh.write(json.dumps(experience.to_dict(), sort_keys=True) + "\n")
        return path

    def import_jsonl(self, path: str | Path) -> int:
        """Add experiences from a JSON Lines export; returns how many were new."""
        return self.extend(read_jsonl(path))
