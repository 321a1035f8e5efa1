"""Samplers."""

from ._sampler import MetaPEFTSampler

__all__ = ["MetaPEFTSampler"]
