"""SB-CFM's coupling (Tong et al. 2023; torchcfm's SchrodingerBridgeConditionalFlowMatcher recipe, written in
genlab): minibatch Sinkhorn with reg 2σ² on the unnormalised squared cost equals a converged dense Sinkhorn plan,
has the Gibbs form of the static SB with reference σW (P ∝ u_i e^{−|x_i−y_j|²/(2σ²)} v_j), and on Gaussians its
cross-covariance approaches the closed-form EOT value at ε = σ²."""

from __future__ import annotations

import math

import pytest
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


def _dense_sinkhorn_to_convergence(cost: torch.Tensor, reg: float, tol: float = 1e-12) -> torch.Tensor:
    """Plain scaling Sinkhorn iterated until the row marginals match to ``tol`` (may take 10⁴–10⁵ iterations)."""
    k = torch.exp(-cost / reg)
    a = torch.full((cost.shape[0],), 1.0 / cost.shape[0], dtype=DT)
    b = torch.full((cost.shape[1],), 1.0 / cost.shape[1], dtype=DT)
    u, v = torch.ones_like(a), torch.ones_like(b)
    for it in range(200_000):
        u = a / (k @ v)
        v = b / (k.T @ u)
        if it % 500 == 0 and float(((u[:, None] * k * v[None, :]).sum(1) / a - 1).abs().max()) < tol:
            break
    return u[:, None] * k * v[None, :]


def test_sb_cfm_converges_at_the_papers_small_regularisation() -> None:
    """σ² = 0.1 (reg 2σ² = 0.2, max C/reg ≈ 100): the stabilised solver (ε-scaling + Sinkhorn–Newton) returns
    the converged dense Sinkhorn plan without a warning; plain Sinkhorn at 50 iterations (the old benchmark
    setting) warns and is off by > 1e-3."""
    import warnings

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(8, 2, generator=g, dtype=DT), 0.5 + torch.randn(8, 2, generator=g, dtype=DT)
    sigma = math.sqrt(0.1)
    cost = squared_cost(x0, x1)
    assert float(cost.max()) / (2 * sigma**2) > 50
    dense = _dense_sinkhorn_to_convergence(cost, 2 * sigma**2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        plan = MinibatchOT.schrodinger_bridge(sigma, solver="newton").plan(x0, x1)
    torch.testing.assert_close(plan, dense, atol=1e-9, rtol=1e-6)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        plain = MinibatchOT.schrodinger_bridge(sigma, solver="sinkhorn", n_iter=50).plan(x0, x1)
    assert float((plain - dense).abs().max()) > 1e-3


def test_sb_cfm_newton_converges_on_the_benchmark_batch() -> None:
    """The 16-D ε = 0.1 benchmark minibatch (128 × 128, max C/reg ≈ 800): marginals converged to the solver tol."""
    from genlab.analytic import eot_benchmark

    bench = eot_benchmark(16, 0.1)
    g = torch.Generator().manual_seed(0)
    x0, x1 = bench.sample_source(128, generator=g), bench.sample_target(128, generator=g)
    plan = MinibatchOT.schrodinger_bridge(math.sqrt(0.1), solver="newton").plan(x0, x1)
    assert bool(torch.isfinite(plan).all())
    torch.testing.assert_close(plan.sum(0), torch.full((128,), 1 / 128, dtype=DT), atol=1e-8, rtol=0)
    torch.testing.assert_close(plan.sum(1), torch.full((128,), 1 / 128, dtype=DT), atol=1e-8, rtol=0)
    with pytest.raises(ValueError, match="solver"):
        MinibatchOT.schrodinger_bridge(1.0, solver="lbfgs")
