"""Closed-form entropic optimal transport between two Gaussians (the Schrödinger-bridge test oracle).

For p0 = N(m0, Σ0), p1 = N(m1, Σ1), cost ½|x − y|² and entropic regulariser ε (the SB with Wiener reference
W^ε), the optimal plan is jointly Gaussian with cross-covariance ``C = ½(Σ0^{½} D Σ0^{−½} − εI)``,
``D = (4Σ0^{½}Σ1Σ0^{½} + ε²I)^{½}`` (Janati et al. 2020; Mallasto et al. 2022; ``reference/interpolants.md`` §6).
The conditional plan is ``y | x ~ N(m1 + Cᵀ Σ0⁻¹(x − m0), Σ1 − CᵀΣ0⁻¹C)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.utils import randn_per_sample

__all__ = ["GaussianEOTPlan", "gaussian_eot_plan"]


def _sym_sqrt(m: Tensor) -> Tensor:
    evals, evecs = torch.linalg.eigh(0.5 * (m + m.T))
    return evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T


@dataclass
class GaussianEOTPlan:
    """Joint Gaussian plan ``N([m0; m1], [[Σ0, C], [Cᵀ, Σ1]])`` and its conditional map.

    Attributes:
        m0: Source mean.
        m1: Target mean.
        cov0: Source covariance.
        cov1: Target covariance.
        cross: Cross-covariance C = Cov(x0, x1).
        eps: Entropic regularisation ε.
    """

    m0: Tensor
    m1: Tensor
    cov0: Tensor
    cov1: Tensor
    cross: Tensor
    eps: float

    @property
    def joint_cov(self) -> Tensor:
        """The (2d, 2d) covariance of (x0, x1)."""
        return torch.cat([torch.cat([self.cov0, self.cross], 1), torch.cat([self.cross.T, self.cov1], 1)], 0)

    def conditional(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``(n, d)`` and covariance ``(d, d)`` of x1 | x0."""
        gain = torch.linalg.solve(self.cov0, self.cross).T  # Cᵀ Σ0⁻¹
        mean = self.m1 + (x0.to(self.m0.dtype) - self.m0) @ gain.T
        cov = self.cov1 - gain @ self.cross
        return mean, 0.5 * (cov + cov.T)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` pairs (x0, x1) from the plan."""
        d = self.m0.shape[0]
        z = randn_per_sample((n, 2 * d), generator=generator, dtype=self.m0.dtype, device=self.m0.device)
        xy = torch.cat([self.m0, self.m1]) + z @ _sym_sqrt(self.joint_cov).T
        return xy[:, :d], xy[:, d:]


def gaussian_eot_plan(m0: Tensor, cov0: Tensor, m1: Tensor, cov1: Tensor, eps: float) -> GaussianEOTPlan:
    """The entropic OT plan between N(m0, Σ0) and N(m1, Σ1) with regularisation ε > 0 (float64).

    Args:
        m0: Source mean ``(d,)``.
        cov0: Source covariance ``(d, d)`` (positive definite).
        m1: Target mean ``(d,)``.
        cov1: Target covariance ``(d, d)``.
        eps: ε > 0 (σ² of the Brownian reference).

    Returns:
        :class:`GaussianEOTPlan`.
    """
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    m0, m1 = (torch.as_tensor(v, dtype=torch.float64) for v in (m0, m1))
    cov0, cov1 = (torch.as_tensor(v, dtype=torch.float64) for v in (cov0, cov1))
    d = m0.shape[0]
    if cov0.shape != (d, d) or cov1.shape != (d, d) or m1.shape != (d,):
        raise ValueError("means must be (d,) and covariances (d, d) with one d")
    eye = torch.eye(d, dtype=torch.float64)
    s0 = _sym_sqrt(cov0)
    s0_inv = torch.linalg.inv(s0)
    dmat = _sym_sqrt(4 * s0 @ cov1 @ s0 + eps**2 * eye)
    cross = 0.5 * (s0 @ dmat @ s0_inv - eps * eye)
    return GaussianEOTPlan(m0, m1, cov0, cov1, cross, float(eps))
