"""Pareto fronts, hypervolume and expected hypervolume improvement (minimisation).

The region not dominated by a front is cut into grid cells along the front's own
coordinates; every cell is either wholly dominated or wholly free. The hypervolume
improvement of a new point is the volume it dominates in free cells, and for independent
Gaussian objectives its expectation factorises per cell and per objective, which gives
an exact, vectorised EHVI (Emmerich et al.'s box decomposition, on a grid).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_FAR = 1e3  # stands in for -infinity as the grid's lower edge (objectives are normalised)


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (minimisation).

    Example:
        >>> pareto_mask(np.array([[1, 2], [2, 1], [2, 2]])).tolist()
        [True, True, False]
    """
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    dominated = np.zeros(len(points), dtype=bool)
    for i, p in enumerate(points):
        better_or_equal = np.all(points <= p, axis=1)
        strictly = np.any(points < p, axis=1)
        dominated[i] = bool(np.any(better_or_equal & strictly))
    return ~dominated


def knee_index(points: np.ndarray) -> int:
    """Index of the knee of a set of minimised objective vectors: among the
    non-dominated rows, the one nearest the ideal point once every objective is scaled to
    the front's own range, the compromise solution of Zeleny's compromise programming
    (1973). On a quality/cost front it is good quality at low cost, where the extreme
    points buy the last bit of quality with a large cost, or the reverse.

    Args:
        points: ``(n, d)`` objective vectors, all minimised.

    Returns:
        The row index of the knee (ties: the lowest index).

    Example:
        >>> knee_index(np.array([[0.0, 10.0], [0.2, 1.0], [1.0, 0.0], [0.5, 5.0]]))
        1
    """
    points = np.asarray(points, dtype=float)
    front = np.flatnonzero(pareto_mask(points))
    low, high = points[front].min(axis=0), points[front].max(axis=0)
    span = np.where(high - low > 1e-12, high - low, 1.0)
    distance = np.linalg.norm((points[front] - low) / span, axis=1)
    return int(front[np.argmin(distance)])


def _free_cells(front: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners of the grid cells not dominated by ``front``."""
    dims = front.shape[1]
    edges = []
    for d in range(dims):
        inside = front[front[:, d] < reference[d], d]
        edges.append(np.unique(np.concatenate([[-_FAR], inside, [reference[d]]])))
    grids = np.meshgrid(*(np.arange(len(e) - 1) for e in edges), indexing="ij")
    index = np.stack([g.ravel() for g in grids], axis=1)
    lows = np.stack([edges[d][index[:, d]] for d in range(dims)], axis=1)
    highs = np.stack([edges[d][index[:, d] + 1] for d in range(dims)], axis=1)
    if len(front):
        dominated = np.any(np.all(front[None, :, :] <= lows[:, None, :], axis=2), axis=1)
        lows, highs = lows[~dominated], highs[~dominated]
    return lows, highs


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``points`` and bounded by ``reference`` (minimisation).

    Example:
        >>> hypervolume(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2.0, 2.0]))
        3.0
    """
    points = np.asarray(points, dtype=float)
    reference = np.asarray(reference, dtype=float)
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    points = points[pareto_mask(points)]
    low = points.min(axis=0)
    lows, highs = _free_cells(points, reference)
    # Free volume inside the box [low, reference], subtracted from the box.
    clipped = np.clip(highs, low, reference) - np.clip(lows, low, reference)
    free = float(np.prod(np.maximum(clipped, 0.0), axis=1).sum())
    return float(np.prod(reference - low)) - free


def expected_hypervolume_improvement(
    mean: np.ndarray, std: np.ndarray, front: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """Exact EHVI of candidates with independent Gaussian objectives.

    Args:
        mean: ``(n, d)`` predicted means (minimisation, normalised scales).
        std: ``(n, d)`` predicted standard deviations.
        front: ``(m, d)`` current non-dominated points (may be empty).
        reference: ``(d,)`` reference point.

    Returns:
        ``(n,)`` expected hypervolume improvements.
    """
    mean = np.asarray(mean, dtype=float)
    std = np.maximum(np.asarray(std, dtype=float), 1e-9)
    front = np.asarray(front, dtype=float).reshape(-1, mean.shape[1])
    front = front[np.all(front < reference, axis=1)]
    if len(front):
        front = front[pareto_mask(front)]
    lows, highs = _free_cells(front, np.asarray(reference, dtype=float))
    # E[max(0, u - max(Y, l))] for Y ~ N(mu, sigma), per cell, candidate and objective.
    mu, sigma = mean[:, None, :], std[:, None, :]
    lo, hi = lows[None], highs[None]
    beta_l, beta_u = (lo - mu) / sigma, (hi - mu) / sigma
    cdf_l, cdf_u = ndtr(beta_l), ndtr(beta_u)
    pdf_l, pdf_u = _pdf(beta_l), _pdf(beta_u)
    expected = (hi - lo) * cdf_l + (hi - mu) * (cdf_u - cdf_l) + sigma * (pdf_u - pdf_l)
    return np.prod(np.maximum(expected, 0.0), axis=2).sum(axis=1)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """EI below ``best`` (minimisation) for Gaussian predictions."""
    std = np.maximum(std, 1e-9)
    z = (best - mean) / std
    return (best - mean) * ndtr(z) + std * _pdf(z)


def _pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
