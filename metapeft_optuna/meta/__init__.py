"""Meta-learning: experience, task embedding, method selection, surrogate, Reptile, MAML,
MetaPEFTSystem and MetaHyperparameterOptimizer."""

from .baseline import BaselineComparison
from .experience import ExperienceBuffer, PEFTExperience
from .hpo import MetaHyperparameterOptimizer, Proposal
from .maml import MAMLLearner
from .networks import MethodSelectionNetwork, SurrogateNet, TaskEmbeddingNetwork
from .recommendation import MethodRecommendation
from .reptile import ReptileLearner
from .surrogate import PEFTSurrogate, SurrogateConfig
from .system import MetaPEFTSystem

__all__ = [
    "BaselineComparison",
    "ExperienceBuffer",
    "MAMLLearner",
    "MetaHyperparameterOptimizer",
    "MetaPEFTSystem",
    "MethodRecommendation",
    "MethodSelectionNetwork",
    "PEFTExperience",
    "PEFTSurrogate",
    "Proposal",
    "ReptileLearner",
    "SurrogateConfig",
    "SurrogateNet",
    "TaskEmbeddingNetwork",
]
