"""DiscreteVPSchedule: the exact t ↔ timestep mapping, table values at integer timesteps, log-linear interpolation,
derivatives, the log-SNR inverse and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.interpolants import Interpolant
from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.samplers import grids

F64 = torch.float64
BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=F64)  # DDPM / diffusers default


def test_integer_timesteps_hit_the_table_and_t1_is_clean_data() -> None:
    sched = DiscreteVPSchedule.from_betas(BETAS)
    abar = torch.cumprod(1 - BETAS, 0)
    n = torch.arange(-1, 1000)
    t = sched.timestep_to_t(n)
    assert float(t[0]) == 1.0 and float(t[-1]) == 0.0  # n = −1 ↔ t = 1, n = T − 1 ↔ t = 0
    torch.testing.assert_close(sched.t_to_timestep(t), n.to(F64), rtol=0, atol=1e-9)
    c = sched.coeffs(t)
    torch.testing.assert_close(c.beta[1:] ** 2, abar, rtol=1e-14, atol=0)
    torch.testing.assert_close(c.alpha**2 + c.beta**2, torch.ones_like(t), rtol=1e-14, atol=1e-14)
    assert float(c.beta[0]) == 1.0 and float(c.alpha[0]) == 0.0 and not math.copysign(1.0, float(c.alpha[0])) < 0
    lam = Interpolant(sched).semilinear(t[:1], t[:1]).lam
    assert float(lam[0]) == math.inf  # +0 noise: λ = +∞, not NaN


def test_log_abar_is_linear_between_timesteps_and_derivatives_match() -> None:
    sched = DiscreteVPSchedule.from_betas(BETAS)
    abar = torch.cumprod(1 - BETAS, 0)
    t_half = sched.timestep_to_t(torch.tensor([499.5]))
    assert float(sched.coeffs(t_half).beta ** 2) == pytest.approx(math.sqrt(float(abar[499] * abar[500])), rel=1e-13)
    t = torch.tensor([0.1234, 0.5678, 0.9512], dtype=F64)  # away from the knots
    h = 1e-8
    cp, cm, c = sched.coeffs(t + h), sched.coeffs(t - h), sched.coeffs(t)
    torch.testing.assert_close((cp.alpha - cm.alpha) / (2 * h), c.d_alpha, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close((cp.beta - cm.beta) / (2 * h), c.d_beta, rtol=1e-6, atol=1e-7)


def test_snr_inverse_and_log_snr_grid() -> None:
    sched = DiscreteVPSchedule.from_betas(BETAS)
    t = torch.linspace(0.0, 0.999, 37, dtype=F64)
    c = sched.coeffs(t)
    torch.testing.assert_close(sched.snr_inverse(torch.log(c.beta**2 / c.alpha**2)), t, rtol=0, atol=1e-12)
    path = Interpolant(sched)
    g = grids.log_snr(12, path)
    lam = path.semilinear(g, g).lam
    d = lam[1:] - lam[:-1]
    torch.testing.assert_close(d, d.mean().expand_as(d), rtol=1e-9, atol=1e-12)


def test_from_sigmas_reproduces_the_noise_to_signal_ratios() -> None:
    ac = torch.cumprod(1 - BETAS.float(), 0)  # float32 like diffusers
    sig = ((1 - ac) / ac) ** 0.5
    sched = DiscreteVPSchedule.from_sigmas(sig.double())
    c = sched.coeffs(sched.timestep_to_t(torch.arange(1000)))
    torch.testing.assert_close(c.alpha / c.beta, sig.double(), rtol=1e-14, atol=0)


def test_bad_tables_are_rejected() -> None:
    with pytest.raises(ValueError, match="strictly decreasing"):
        DiscreteVPSchedule(torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        DiscreteVPSchedule(torch.tensor([1.2, 0.9]))
    with pytest.raises(ValueError, match="1-D"):
        DiscreteVPSchedule(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="betas"):
        DiscreteVPSchedule.from_betas(torch.tensor([0.0, 0.1]))
    with pytest.raises(ValueError, match="timesteps must lie"):
        DiscreteVPSchedule.from_betas(BETAS).timestep_to_t(torch.tensor([1000.0]))
