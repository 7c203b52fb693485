"""Exact posterior of a Gaussian-mixture prior under a linear Gaussian measurement ``y = A x + σ n``.

Bayes with conjugate components: each component N(μ_k, Σ_k) becomes N(μ'_k, Σ'_k) with
``Σ'_k = (Σ_k⁻¹ + AᵀA/σ²)⁻¹``, ``μ'_k = Σ'_k(Σ_k⁻¹μ_k + Aᵀy/σ²)`` and weights ``w'_k ∝ w_k N(y; Aμ_k, AΣ_kAᵀ + σ²I)``
(the oracle of the MCGdiff benchmark, Cardoso et al. ICLR'24, App. B; ``reference/inverse.md`` §5.2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.analytic.gmm import GaussianMixture

__all__ = ["gmm_posterior"]


def gmm_posterior(prior: GaussianMixture, A: Tensor, y: Tensor, sigma: float) -> GaussianMixture:
    """The posterior p(x | y) of a GMM prior for ``y = A x + σ n`` (float64).

    Args:
        prior: Prior mixture in dimension d.
        A: ``(m, d)`` measurement matrix.
        y: ``(m,)`` measurement.
        sigma: Noise std σ > 0.

    Returns:
        The posterior as a :class:`GaussianMixture`.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 for a Gaussian likelihood, got {sigma}")
    A = torch.as_tensor(A, dtype=torch.float64, device=prior.means.device)
    y = torch.as_tensor(y, dtype=torch.float64, device=prior.means.device).reshape(-1)
    if A.ndim != 2 or A.shape[1] != prior.dim:
        raise ValueError(f"A must have shape (m, {prior.dim}), got {tuple(A.shape)}")
    if y.shape[0] != A.shape[0]:
        raise ValueError(f"y must have {A.shape[0]} entries (rows of A), got {y.shape[0]}")
    pr = prior.to(dtype=torch.float64)
    m = A.shape[0]
    prec = torch.linalg.inv(pr.covs) + (A.T @ A)[None] / sigma**2
    cov_post = torch.linalg.inv(prec)
    cov_post = 0.5 * (cov_post + cov_post.transpose(-1, -2))
    rhs = torch.linalg.solve(pr.covs, pr.means[..., None]).squeeze(-1) + (A.T @ y)[None] / sigma**2
    mean_post = (cov_post @ rhs[..., None]).squeeze(-1)
    s = A[None] @ pr.covs @ A.T[None] + sigma**2 * torch.eye(m, dtype=torch.float64, device=A.device)
    r = y[None] - pr.means @ A.T
    chol = torch.linalg.cholesky(s)
    half = torch.linalg.solve_triangular(chol, r[..., None], upper=False).squeeze(-1)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    loglik = -0.5 * (half.pow(2).sum(-1) + logdet + m * math.log(2 * math.pi))
    logw = torch.log(pr.weights) + loglik
    weights = torch.softmax(logw, 0)
    return GaussianMixture(mean_post, cov_post, weights)
