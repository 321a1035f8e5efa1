"""Meta-learning: experience, task embedding, method selection, surrogate, Reptile,
MetaPEFTSystem and MetaHyperparameterOptimizer."""

from .experience import ExperienceBuffer, PEFTExperience
from .hpo import MetaHyperparameterOptimizer, Proposal
from .networks import MethodSelectionNetwork, SurrogateNet, TaskEmbeddingNetwork
from .recommendation import MethodRecommendation
from .reptile import ReptileLearner
from .surrogate import PEFTSurrogate, SurrogateConfig
from .system import MetaPEFTSystem

__all__ = [
    "ExperienceBuffer",
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
