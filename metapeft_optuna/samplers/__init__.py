"""Samplers."""

from ._sampler import FALLBACKS, MetaPEFTSampler

__all__ = ["FALLBACKS", "MetaPEFTSampler"]
