"""Pruners, and the curve reporting that works in multi-objective studies."""

from ._meta_peft import MetaPEFTPruner, metric_at
from .reporting import report, should_prune

__all__ = ["MetaPEFTPruner", "metric_at", "report", "should_prune"]
