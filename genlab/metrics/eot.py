r"""Conditional Bures–Wasserstein unexplained-variance percentage (cBW²₂-UVP) of an entropic-OT plan.

Gushchin et al. (NeurIPS 2023, §4, "metrics.py" of the benchmark; ``reference/interpolants.md`` §6):

.. math::
    \mathrm{cBW}^2_2\text{-UVP}(\hat π) = \frac{100\%}{\tfrac12 \mathrm{Var}(p_1)}
        \int \mathrm{BW}^2_2\big(\hat π(\cdot|x), π^*(\cdot|x)\big)\, dp_0(x),

with ``BW²₂(p, q) = ½ W₂²`` between the Gaussian fits of ``p`` and ``q``:
``½|μ₁ − μ₂|² + ½ tr Σ₁ + ½ tr Σ₂ − tr (Σ₁^{½} Σ₂ Σ₁^{½})^{½}`` (the benchmark's ``½`` convention, as written in
the reference note), and ``Var(p1) = tr Cov(p1)``. The expectation is a mean over test points ``x``; each
``π̂(·|x)`` is fitted from samples drawn from the method at that ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["bw2", "cbw2_uvp", "gaussian_fit"]


def _sqrtm_psd(a: Tensor) -> Tensor:
    evals, evecs = torch.linalg.eigh(0.5 * (a + a.transpose(-1, -2)))
    return (evecs * evals.clamp_min(0).sqrt()[..., None, :]) @ evecs.transpose(-1, -2)


def bw2(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """``BW²₂ = ½ W₂²`` between Gaussians, batched over leading dimensions (float64).

    Args:
        mean1: ``(..., D)``.
        cov1: ``(..., D, D)``.
        mean2: ``(..., D)``.
        cov2: ``(..., D, D)``.

    Returns:
        ``(...)`` values ``≥ 0``.
    """
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape or cov1.shape[:-1] != mean1.shape:
        raise ValueError(
            f"bw2: means must be (..., D) and covariances (..., D, D) alike; got {tuple(mean1.shape)}, "
            f"{tuple(cov1.shape)}, {tuple(mean2.shape)}, {tuple(cov2.shape)}"
        )
    m1, c1, m2, c2 = (v.to(torch.float64) for v in (mean1, cov1, mean2, cov2))
    r1 = _sqrtm_psd(c1)
    cross = torch.linalg.eigvalsh(0.5 * ((r1 @ c2 @ r1) + (r1 @ c2 @ r1).transpose(-1, -2)))
    tr_cross = cross.clamp_min(0).sqrt().sum(-1)
    tr1 = torch.diagonal(c1, dim1=-2, dim2=-1).sum(-1)
    tr2 = torch.diagonal(c2, dim1=-2, dim2=-1).sum(-1)
    return (0.5 * ((m1 - m2) ** 2).sum(-1) + 0.5 * tr1 + 0.5 * tr2 - tr_cross).clamp_min(0)


def gaussian_fit(samples: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(n, D)`` and unbiased covariance ``(n, D, D)`` of ``samples`` of shape ``(n, m, D)``, ``m >= 2``."""
    if samples.ndim != 3 or samples.shape[1] < 2:
        raise ValueError(f"samples must have shape (n_x, m, D) with m >= 2 draws per x; got {tuple(samples.shape)}")
    s = samples.to(torch.float64)
    mean = s.mean(1)
    d = s - mean[:, None]
    return mean, d.transpose(1, 2) @ d / (s.shape[1] - 1)


def cbw2_uvp(samples: Tensor, true_mean: Tensor, true_cov: Tensor, target_variance: float) -> float:
    """cBW²₂-UVP (%) of conditional samples against exact conditional moments.

    Args:
        samples: ``(n_x, m, D)``: ``m`` draws of the method's ``π̂(·|x_i)`` for each test point ``x_i ~ p0``.
        true_mean: ``(n_x, D)`` exact ``E_{π*}[y|x_i]``.
        true_cov: ``(n_x, D, D)`` exact ``Cov_{π*}[y|x_i]``.
        target_variance: ``Var(p1) = tr Cov(p1) > 0``.

    Returns:
        The percentage (a float).

    Raises:
        ValueError: For mismatched shapes or a non-positive variance.
    """
    if not target_variance > 0:
        raise ValueError(f"target_variance must be > 0; got {target_variance!r}")
    mean, cov = gaussian_fit(samples)
    if true_mean.shape != mean.shape or true_cov.shape != cov.shape:
        raise ValueError(
            f"cbw2_uvp: samples {tuple(samples.shape)} need true_mean (n_x, D) = {tuple(mean.shape)} and true_cov "
            f"(n_x, D, D); got {tuple(true_mean.shape)} and {tuple(true_cov.shape)}"
        )
    return float(100.0 * bw2(mean, cov, true_mean, true_cov).mean() / (0.5 * target_variance))
