"""Meta-learning: experience, task embedding, method selection, surrogate, Reptile,
MetaPEFTSystem and MetaHyperparameterOptimizer."""

from .experience import ExperienceBuffer, PEFTExperience
from .hpo import MetaHyperparameterOptimizer, Observations, Proposal
from .networks import MethodSelectionNetwork, SurrogateNet, TaskEmbeddingNetwork
from .policy import Decision, SearchPolicy
from .recommendation import MethodRecommendation
from .reptile import ReptileLearner
from .surrogate import PEFTSurrogate, SurrogateConfig
from .system import MetaPEFTSystem

__all__ = [
    "Decision",
    "ExperienceBuffer",
    "MetaHyperparameterOptimizer",
    "MetaPEFTSystem",
    "MethodRecommendation",
    "MethodSelectionNetwork",
    "Observations",
    "PEFTExperience",
    "PEFTSurrogate",
    "Proposal",
    "ReptileLearner",
    "SearchPolicy",
    "SurrogateConfig",
    "SurrogateNet",
    "TaskEmbeddingNetwork",
]
