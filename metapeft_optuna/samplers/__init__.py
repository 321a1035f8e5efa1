"""Samplers."""

from ._sampler import MetaPEFTSampler, fallback_sampler

__all__ = ["MetaPEFTSampler", "fallback_sampler"]
