"""Pruners, and the curve reporting that works in multi-objective studies."""

from ..training.reporting import report, should_prune
from ._prediction import metric_at
from ._pruner import MetaPEFTPruner

__all__ = ["MetaPEFTPruner", "metric_at", "report", "should_prune"]
