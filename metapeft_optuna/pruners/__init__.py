"""Pruners, and the curve reporting that works in multi-objective studies."""

from ..training.reporting import report, should_prune
from ._meta_peft import MetaPEFTPruner, metric_at

__all__ = ["MetaPEFTPruner", "metric_at", "report", "should_prune"]
