"""Samplers."""

from ._meta_peft import MetaPEFTSampler

__all__ = ["MetaPEFTSampler"]
