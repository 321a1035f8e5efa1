"""The seed's meta-learning research API, apart from the product.

The API reference's modules under their names there (``meta_learning.reptile``,
``meta_learning.models``, ``task_embedding.task_distribution``,
``adapter_generation``, ``utils.config``, ``utils.logging``, ``utils.baseline``), plus
MAML. Few-shot learning of small MLX classifiers on synthetic task families; the
product (``MetaPEFTSampler``, ``MetaPEFTPruner``) needs none of it except
:class:`ReptileLearner`, which meta-trains its surrogate.

Example:
    >>> from metapeft_optuna.research import SimpleClassifier, ReptileLearner
    >>> learner = ReptileLearner(SimpleClassifier(input_dim=4), inner_lr=0.01)
    >>> learner.inner_lr
    0.01
"""

from ..meta.reptile import ReptileLearner
from ..peft import AdapterFactory
from .baseline import BaselineComparison
from .logging import setup_logger
from .lora import LoRAAdapter
from .maml import MAMLLearner
from .meta_config import MetaLearningConfig
from .models import SimpleClassifier, accuracy, cross_entropy_loss
from .task_distribution import TaskConfig, TaskDistribution

__all__ = [
    "AdapterFactory",
    "BaselineComparison",
    "LoRAAdapter",
    "MAMLLearner",
    "MetaLearningConfig",
    "ReptileLearner",
    "SimpleClassifier",
    "TaskConfig",
    "TaskDistribution",
    "accuracy",
    "cross_entropy_loss",
    "setup_logger",
]
