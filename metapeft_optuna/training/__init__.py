"""Training: batching, the answer-only loss, the compiled step, the trial runner."""

from .objective import PEFTObjective
from .prepared import PreparedTask
from .results import CurvePoint, TrainingBudget, TrialResult
from .search_space import PEFTSearchSpace
from .trainer import fine_tune

__all__ = [
    "CurvePoint",
    "PEFTObjective",
    "PEFTSearchSpace",
    "PreparedTask",
    "TrainingBudget",
    "TrialResult",
    "fine_tune",
]
