"""SB-CFM's coupling (Tong et al. 2023; torchcfm's SchrodingerBridgeConditionalFlowMatcher recipe, written in
genlab): minibatch Sinkhorn with reg 2σ² on the unnormalised squared cost equals a converged dense Sinkhorn plan,
has the Gibbs form of the static SB with reference σW (P ∝ u_i e^{−|x_i−y_j|²/(2σ²)} v_j), and on Gaussians its
cross-covariance approaches the closed-form EOT value at ε = σ²."""

from __future__ import annotations

import math

import torch

from genlab.analytic import gaussian_eot_plan
from genlab.couplings import Independent, MinibatchOT, squared_cost

DT = torch.float64


def _dense_sinkhorn(cost: torch.Tensor, reg: float, iters: int = 5000) -> torch.Tensor:
    """Plain (non-log) Sinkhorn scaling with uniform marginals, run to convergence."""
    k = torch.exp(-cost / reg)
    a = torch.full((cost.shape[0],), 1.0 / cost.shape[0], dtype=DT)
    b = torch.full((cost.shape[1],), 1.0 / cost.shape[1], dtype=DT)
    u, v = torch.ones_like(a), torch.ones_like(b)
    for _ in range(iters):
        u = a / (k @ v)
        v = b / (k.T @ u)
    return u[:, None] * k * v[None, :]


def test_sb_cfm_plan_equals_dense_sinkhorn_and_gibbs_form() -> None:
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(12, 2, generator=g, dtype=DT), 0.5 + torch.randn(12, 2, generator=g, dtype=DT)
    sigma = 0.8
    coupling = MinibatchOT.schrodinger_bridge(sigma, n_iter=5000)
    plan = coupling.plan(x0, x1)
    reg = 2 * sigma**2
    assert coupling.reg == reg and coupling.normalize == "none"
    dense = _dense_sinkhorn(squared_cost(x0, x1), reg)
    torch.testing.assert_close(plan, dense, atol=1e-9, rtol=1e-6)
    # Gibbs form: log P + |x_i − y_j|²/(2σ²) = f_i + g_j (its double-centred matrix vanishes)
    m = plan.log() + squared_cost(x0, x1) / reg
    centred = m - m.mean(0, keepdim=True) - m.mean(1, keepdim=True) + m.mean()
    assert float(centred.abs().max()) < 1e-8
    torch.testing.assert_close(plan.sum(1), torch.full((12,), 1 / 12, dtype=DT))


def test_sb_cfm_plan_cross_covariance_matches_gaussian_eot() -> None:
    """N(0,1) → N(0,1), σ = 1 (ε = 1): plan-weighted Cov(x0, x1) on 1000 samples ≈ (√5 − 1)/2 within 0.05."""
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(1000, 1, generator=g, dtype=DT), torch.randn(1000, 1, generator=g, dtype=DT)
    plan = MinibatchOT.schrodinger_bridge(1.0).plan(x0, x1)
    a, b = x0[:, 0] - x0.mean(), x1[:, 0] - x1.mean()
    cross = float((plan * a[:, None] * b[None, :]).sum())
    one = torch.ones(1, 1, dtype=DT)
    expected = float(gaussian_eot_plan(torch.zeros(1), one, torch.zeros(1), one, 1.0).cross)
    assert math.isclose(expected, (math.sqrt(5) - 1) / 2, rel_tol=1e-12)
    assert abs(cross - expected) < 0.05
    # the coupling draws pairs from that plan with a data source as base
    pair = MinibatchOT.schrodinger_bridge(1.0, base=Independent(lambda n, generator=None: torch.randn(
        n, 1, generator=generator, dtype=DT))).sample(x1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(pair.x1, x1)
