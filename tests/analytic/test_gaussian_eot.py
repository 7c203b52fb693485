"""Closed-form Gaussian entropic OT (reference/interpolants.md §6): the 1-D formula, the Gibbs structure of the
plan (its joint precision has off-diagonal block −I/ε) in 2-D, a log-domain Sinkhorn check on a fine grid, the
conditional map, sampling, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.analytic import gaussian_eot_plan

DT = torch.float64


@pytest.mark.parametrize("eps", [0.1, 1.0, 4.0])
def test_unit_variance_1d_cross_covariance(eps: float) -> None:
    one = torch.ones(1, 1, dtype=DT)
    plan = gaussian_eot_plan(torch.zeros(1), one, torch.zeros(1), one, eps)
    assert float(plan.cross) == pytest.approx((math.sqrt(4 + eps**2) - eps) / 2, rel=1e-13)
    if eps == 1.0:
        assert float(plan.cross) == pytest.approx(0.6180339887498949, rel=1e-13)


def test_general_1d_and_marginals() -> None:
    s0, s1, eps = 0.7, 1.8, 0.5
    plan = gaussian_eot_plan(torch.tensor([1.0], dtype=DT), torch.tensor([[s0**2]], dtype=DT),
                             torch.tensor([-2.0], dtype=DT), torch.tensor([[s1**2]], dtype=DT), eps)
    assert float(plan.cross) == pytest.approx(0.5 * (math.sqrt(4 * s0**2 * s1**2 + eps**2) - eps), rel=1e-13)
    joint = plan.joint_cov
    assert float(joint[0, 0]) == pytest.approx(s0**2) and float(joint[1, 1]) == pytest.approx(s1**2)


def _spd(seed: int, d: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=DT)
    return a @ a.T + 0.3 * torch.eye(d, dtype=DT)


@pytest.mark.parametrize("eps", [0.2, 1.0, 5.0])
def test_plan_has_gibbs_structure_in_2d(eps: float) -> None:
    # The EOT plan for cost ½|x − y|² and ε·KL is ∝ exp(⟨x, y⟩/ε) f(x) g(y): its joint precision has off-diagonal
    # block −I/ε; with the marginals fixed this characterises the plan.
    d = 2
    cov0, cov1 = _spd(1, d), _spd(2, d)
    m0, m1 = torch.tensor([0.5, -1.0], dtype=DT), torch.tensor([2.0, 0.3], dtype=DT)
    plan = gaussian_eot_plan(m0, cov0, m1, cov1, eps)
    joint = plan.joint_cov
    torch.testing.assert_close(joint[:d, :d], cov0)
    torch.testing.assert_close(joint[d:, d:], cov1)
    assert float(torch.linalg.eigvalsh(joint).min()) > 0
    prec = torch.linalg.inv(joint)
    torch.testing.assert_close(prec[:d, d:], -torch.eye(d, dtype=DT) / eps, rtol=1e-9, atol=1e-9)
    # conditional plan y | x ~ N(m1 + CᵀΣ0⁻¹(x − m0), Σ1 − CᵀΣ0⁻¹C) equals the Gaussian conditional of the joint
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=DT)
    mean, cov = plan.conditional(x)
    gain = plan.cross.T @ torch.linalg.inv(cov0)
    torch.testing.assert_close(mean, m1 + (x - m0) @ gain.T)
    torch.testing.assert_close(cov, torch.linalg.inv(prec[d:, d:]), rtol=1e-9, atol=1e-10)
    # and its covariance is ε S with S = CᵀΣ0⁻¹ symmetric (LightSB's K = 1 parametrisation, reference §6)
    torch.testing.assert_close(gain, gain.T, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(cov, cov1 - gain @ plan.cross, rtol=1e-9, atol=1e-10)


def _sinkhorn_cross_cov(m0: float, s0: float, m1: float, s1: float, eps: float, n: int = 601) -> float:
    """Log-domain Sinkhorn between discretised 1-D Gaussians, cost ½|x − y|², regulariser ε·KL(π | p⊗q)."""
    x = torch.linspace(m0 - 8 * s0, m0 + 8 * s0, n, dtype=DT)
    y = torch.linspace(m1 - 8 * s1, m1 + 8 * s1, n, dtype=DT)
    log_p = torch.log_softmax(-0.5 * ((x - m0) / s0) ** 2, 0)
    log_q = torch.log_softmax(-0.5 * ((y - m1) / s1) ** 2, 0)
    log_k = -0.5 * (x[:, None] - y[None, :]) ** 2 / eps
    f = torch.zeros(n, dtype=DT)
    g = torch.zeros(n, dtype=DT)
    for _ in range(2000):
        f = -torch.logsumexp(log_k + g[None, :] + log_q[None, :], 1)
        g = -torch.logsumexp(log_k + f[:, None] + log_p[:, None], 0)
        log_pi = log_k + f[:, None] + g[None, :] + log_p[:, None] + log_q[None, :]
        if float((torch.logsumexp(log_pi, 1).exp() - log_p.exp()).abs().sum()) < 1e-12:
            break
    pi = log_pi.exp()
    mx, my = float((pi.sum(1) * x).sum()), float((pi.sum(0) * y).sum())
    return float((pi * (x[:, None] - mx) * (y[None, :] - my)).sum())


@pytest.mark.parametrize(("m0", "s0", "m1", "s1"), [(0.0, 1.0, 0.0, 1.0), (1.0, 0.8, -0.5, 1.5)])
def test_matches_sinkhorn_on_a_grid(m0: float, s0: float, m1: float, s1: float) -> None:
    eps = 1.0
    plan = gaussian_eot_plan(torch.tensor([m0], dtype=DT), torch.tensor([[s0**2]], dtype=DT),
                             torch.tensor([m1], dtype=DT), torch.tensor([[s1**2]], dtype=DT), eps)
    ref = _sinkhorn_cross_cov(m0, s0, m1, s1, eps)
    assert float(plan.cross) == pytest.approx(ref, rel=0.05)
    assert float(plan.cross) == pytest.approx(ref, rel=1e-8)  # in fact far tighter than the 5% asked for


def test_plan_samples_have_the_joint_moments() -> None:
    cov0, cov1 = _spd(3, 2), _spd(4, 2)
    plan = gaussian_eot_plan(torch.zeros(2, dtype=DT), cov0, torch.ones(2, dtype=DT), cov1, 0.5)
    n = 20000
    x0, x1 = plan.sample(n, generator=torch.Generator().manual_seed(0))
    xy = torch.cat([x0, x1], 1)
    r = xy - xy.mean(0)
    prods = r[:, :, None] * r[:, None, :]
    se = prods.std(0) / math.sqrt(n)
    assert bool(((prods.mean(0) - plan.joint_cov).abs() < 4.5 * se + 1e-3).all())
    a, _ = plan.sample(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, x0[:3], rtol=0, atol=0)  # per-sample draws: batch-size invariant


def test_bad_input_raises() -> None:
    one = torch.eye(1, dtype=DT)
    with pytest.raises(ValueError, match="eps must be > 0"):
        gaussian_eot_plan(torch.zeros(1), one, torch.zeros(1), one, 0.0)
    with pytest.raises(ValueError, match="one d"):
        gaussian_eot_plan(torch.zeros(1), one, torch.zeros(2), torch.eye(2), 1.0)
