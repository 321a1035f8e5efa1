"""Samplers."""

from ._fallback import FALLBACKS
from ._sampler import MetaPEFTSampler

__all__ = ["FALLBACKS", "MetaPEFTSampler"]
