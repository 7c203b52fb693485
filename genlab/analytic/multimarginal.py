"""Exact multimarginal fields for Gaussian marginals and the closed-form transport cost of a simplex path.

Multimarginal stochastic interpolants (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24, arXiv:2310.03695;
reference notes ``reference/interpolants.md`` §4 and check 6 of §9): with independent marginals
ρ_k = N(μ_k, Σ_k), k = 0, …, K, and ρ_0 = N(0, I), the barycentric interpolant x(a) = Σ_k a_k x_k is Gaussian with
mean m(a) = Σ_k a_k μ_k and covariance C(a) = Σ_k a_k² Σ_k, and the conditional expectations are

    g_k(a, x) = E[x_k | x(a) = x] = μ_k + a_k Σ_k C(a)⁻¹ (x − m(a)).

Along a path a(t) the transport velocity is b = Σ_k ȧ_k g_k = ṁ + ½ Ċ C⁻¹ (x − m) (Ċ = 2 Σ_k a_k ȧ_k Σ_k), so with
x ~ N(m, C) the transport cost of the path is

    C[a] = ∫_0^1 E|b|² dt = ∫_0^1 ( |ṁ|² + ¼ tr(Ċ C⁻¹ Ċ) ) dt.

Covariances here are diagonal (``variances`` per coordinate), which keeps every formula elementwise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from genlab.interpolants.simplex import SimplexPath, check_simplex
from genlab.utils import randn_per_sample

__all__ = ["GaussianMarginals", "edge_reparam_optimum"]


class GaussianMarginals(nn.Module):
    """K + 1 independent diagonal Gaussians N(μ_k, diag σ_k²), marginal 0 = N(0, I), and their exact g_k.

    Called as a simplex network ``net(x, a) -> (B, K + 1, d)`` (the stacked heads), so it plugs into
    :class:`~genlab.models.MultimarginalField` like a trained network.

    Args:
        means: ``(K, d)`` means of the data marginals 1..K.
        variances: ``(K, d)`` positive variances of the data marginals 1..K.

    Raises:
        ValueError: Shapes that differ or non-positive variances.
    """

    def __init__(self, means: Tensor, variances: Tensor) -> None:
        super().__init__()
        means = torch.as_tensor(means, dtype=torch.float64)
        variances = torch.as_tensor(variances, dtype=torch.float64)
        if means.ndim != 2 or variances.shape != means.shape:
            raise ValueError(f"means and variances must both have shape (K, d); got {tuple(means.shape)} and "
                             f"{tuple(variances.shape)}")
        if bool((variances <= 0).any()):
            raise ValueError("variances must be positive")
        d = means.shape[1]
        self.register_buffer("mu", torch.cat([torch.zeros(1, d, dtype=torch.float64), means]))
        self.register_buffer("var", torch.cat([torch.ones(1, d, dtype=torch.float64), variances]))
        self.K = int(means.shape[0])
        self.dim = int(d)

    def moments(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """``(m(a), diag C(a))`` of x(a), each ``(B, d)`` (float64)."""
        a = a.to(self.mu.dtype)
        return a @ self.mu, (a * a) @ self.var

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        """Exact heads ``g_k(a, x)``, shape ``(B, K + 1, d)`` in ``x``'s dtype."""
        check_simplex(a, self.K, batch=x.shape[0])
        aa = a.to(self.mu.dtype)
        m, c = self.moments(aa)
        r = (x.to(self.mu.dtype) - m) / c  # C⁻¹ (x − m)
        g = self.mu.unsqueeze(0) + aa.unsqueeze(-1) * self.var.unsqueeze(0) * r.unsqueeze(1)
        return g.to(x.dtype)

    def sample(self, k: int, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of marginal ``k`` (float64, per-sample noise)."""
        z = randn_per_sample((n, self.dim), generator=generator, dtype=torch.float64)
        return self.mu[k] + self.var[k].sqrt() * z

    def sample_all(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``(n, K + 1, d)`` independent draws of every marginal (marginal 0 the standard Gaussian)."""
        z = randn_per_sample((n, self.K + 1, self.dim), generator=generator, dtype=torch.float64)
        return self.mu + self.var.sqrt() * z

    def path_cost(self, path: SimplexPath, *, nodes: int = 2001) -> float:
        """Closed-form transport cost ``∫ |ṁ|² + ¼ Σ_d Ċ_d²/C_d dt`` of ``path`` (composite Simpson rule).

        Args:
            path: A path on this Δ^K.
            nodes: Odd number of quadrature nodes.

        Returns:
            The cost.
        """
        if path.K != self.K:
            raise ValueError(f"path lives on Δ^{path.K} but the marginals have K={self.K}")
        if nodes < 3 or nodes % 2 == 0:
            raise ValueError(f"nodes must be an odd int >= 3; got {nodes}")
        t = torch.linspace(0, 1, nodes, dtype=torch.float64)
        with torch.no_grad():
            a, a_dot = path(t)
            integrand = self.cost_density(a, a_dot)
        w = np.ones(nodes)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        return float((torch.as_tensor(w) * integrand).sum() / (3 * (nodes - 1)))

    def cost_density(self, a: Tensor, a_dot: Tensor) -> Tensor:
        """``E|b(t)|² = |ṁ|² + ¼ Σ_d Ċ_d²/C_d`` at simplex points ``a`` with tangents ``a_dot`` (both ``(T, K+1)``)."""
        a, a_dot = a.to(self.mu.dtype), a_dot.to(self.mu.dtype)
        m_dot = a_dot @ self.mu
        c = (a * a) @ self.var
        c_dot = 2 * (a * a_dot) @ self.var
        return (m_dot**2).sum(-1) + 0.25 * (c_dot**2 / c).sum(-1)


def edge_reparam_optimum(gm: GaussianMarginals, i: int, j: int, *, nodes: int = 20001) -> float:
    """Minimum transport cost over all reparametrisations of the edge e_i → e_j: ``(∫_0^1 √w(s) ds)²``.

    On the edge a(t) = (1 − s(t))e_i + s(t)e_j the cost is ∫ ṡ² w(s) dt with w(s) the cost density of the linear
    edge at s; by Cauchy–Schwarz its minimum over monotone s(·) is (∫ √w ds)², reached at constant speed in that
    metric. For K = 1 every path from e_0 to e_1 is such a reparametrisation, so this is the known optimum that path
    optimisation on Δ^1 must approach.

    Args:
        gm: The Gaussian marginals.
        i: Start vertex.
        j: End vertex.
        nodes: Quadrature nodes (midpoint rule).

    Returns:
        The optimal cost.
    """
    from genlab.interpolants.simplex import EdgePath

    s = (torch.arange(nodes, dtype=torch.float64) + 0.5) / nodes
    a, a_dot = EdgePath(i, j, gm.K)(s)
    w = gm.cost_density(a, a_dot)
    return float(w.sqrt().mean() ** 2)
