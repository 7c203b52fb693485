"""PF-ODE log-likelihoods against closed-form Gaussian densities."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import DiffusionBridge, RectifiedFlow, VEDiffusion, VPDiffusion
from genlab.samplers import log_likelihood
from genlab.samplers.likelihood import gaussian_source_log_prob

F64 = torch.float64


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _gaussian(d: int, seed: int = 0, full: bool = False) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(d, generator=g, dtype=F64)
    if full:
        a = torch.randn(d, d, generator=g, dtype=F64) / math.sqrt(d)
        cov = a @ a.T + 0.3 * torch.eye(d, dtype=F64)
    else:
        cov = torch.diag(0.2 + torch.rand(d, generator=g, dtype=F64))
    return GaussianMixture(m[None], cov[None])


def _log_normal(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


def test_rectified_flow_exact_density():
    """RF from N(0, I) to N(m, C): log ρ1(x) = log N(x; m, C), exact divergence, default source."""
    target = _gaussian(3, full=True)
    field = exact_field(RectifiedFlow(), "gaussian", target, "velocity")
    x = target.sample(8, generator=torch.Generator().manual_seed(1))
    res = log_likelihood(field, x, rtol=1e-9, atol=1e-9)
    ref = _log_normal(x, target.means[0], target.covs[0])
    assert float((res.log_prob - ref).abs().max()) < 1e-4
    assert torch.allclose(res.log_prob, res.log_prob_source + res.delta)
    assert torch.allclose(res.log_prob_source, _log_normal(res.x0, torch.zeros(3, dtype=F64),
                                                           torch.eye(3, dtype=F64)))
    assert res.nfe > 10 and res.x0.shape == x.shape
    # the divergence term matters: dropping it would be wrong by far more than the tolerance
    assert float((res.log_prob_source - ref).abs().max()) > 0.1
    assert torch.allclose(res.bits_per_dim(), -res.log_prob / (3 * math.log(2)))


def test_vp_density_at_one_minus_delta():
    """VP: α̇ is singular at t = 1, so integrate from t_end = 1 − 1e-4 and compare with the exact density
    N(β m, β² C + α² I) of x_{t_end}; the source density at t = 0 is N(β₀ m, β₀² C + α₀² I)."""
    vp = VPDiffusion()
    target = _gaussian(2, seed=3)
    field = exact_field(vp, "gaussian", target, "noise")
    t_end = 1 - 1e-4

    def marginal(t: float):
        c = vp.schedule.coeffs(torch.tensor([t], dtype=F64))
        return c.beta * target.means[0], c.beta**2 * target.covs[0] + c.alpha**2 * torch.eye(2, dtype=F64)

    m1, c1 = marginal(t_end)
    m0, c0 = marginal(0.0)
    x = torch.distributions.MultivariateNormal(m1, c1).sample((6,))
    res = log_likelihood(field, x, t_end=t_end, rtol=1e-9, atol=1e-9,
                         source_log_prob=lambda z: _log_normal(z, m0, c0))
    assert float((res.log_prob - _log_normal(x, m1, c1)).abs().max()) < 1e-4


def test_default_source_is_the_scaled_gaussian():
    """Default source: N(0, α(t_start)² I) — the standard normal for RF, σ_max² for VE, 1 − e^{−T(0)} for VP."""
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for interp, scale in ((RectifiedFlow(), 1.0), (VEDiffusion(), 80.0),
                          (VPDiffusion(), math.sqrt(1 - math.exp(-(0.5 * 19.9 + 0.1))))):
        target = _gaussian(2)
        kind = "velocity" if interp.name == "RectifiedFlow" else "noise"
        field = exact_field(interp, "gaussian", target, kind)
        res = log_likelihood(field, x, t_end=0.9, rtol=1e-7, atol=1e-7)
        ref = _log_normal(res.x0, torch.zeros(2, dtype=F64), scale**2 * torch.eye(2, dtype=F64))
        assert torch.allclose(res.log_prob_source, ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(gaussian_source_log_prob(x, 2.0),
                          _log_normal(x, torch.zeros(2, dtype=F64), 4 * torch.eye(2, dtype=F64)))


@pytest.mark.slow
def test_hutchinson_is_unbiased():
    """d = 20 > 16: the default switches to Hutchinson (Rademacher); its mean error is 0 within MC error."""
    d, n = 20, 96
    target = _gaussian(d, seed=5, full=True)
    field = exact_field(RectifiedFlow(), "gaussian", target, "velocity")
    x = target.sample(n, generator=torch.Generator().manual_seed(6))
    ref = _log_normal(x, target.means[0], target.covs[0])
    res = log_likelihood(field, x, rtol=1e-6, atol=1e-6, generator=torch.Generator().manual_seed(7))
    err = res.log_prob - ref
    assert float(err.std()) > 1e-3  # a genuine estimator, not the exact divergence
    assert abs(float(err.mean())) < 4 * float(err.std()) / math.sqrt(n)
    # more probes reduce the variance; exact divergence removes it
    res4 = log_likelihood(field, x, rtol=1e-6, atol=1e-6, n_hutchinson=4,
                          generator=torch.Generator().manual_seed(7))
    assert float((res4.log_prob - ref).std()) < float(err.std())
    exact = log_likelihood(field, x[:4], rtol=1e-8, atol=1e-8, exact_divergence=True)
    assert float((exact.log_prob - ref[:4]).abs().max()) < 1e-4
    # probes are drawn per sample: the first rows do not depend on the batch size
    few = log_likelihood(field, x[:5], rtol=1e-6, atol=1e-6, generator=torch.Generator().manual_seed(7))
    assert float((few.log_prob - res.log_prob[:5]).abs().max()) < 1e-3


def test_bad_input():
    target = _gaussian(2)
    field = exact_field(RectifiedFlow(), "gaussian", target, "velocity")
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="t_start"):
        log_likelihood(field, x, t_start=0.5, t_end=0.5)
    with pytest.raises(ValueError, match="method"):
        log_likelihood(field, x, method="rk4")
    with pytest.raises(ValueError, match="non-finite"):
        log_likelihood(field, x * float("nan"))
    with pytest.raises(ValueError, match="n_hutchinson"):
        log_likelihood(field, x, n_hutchinson=0)
    br = DiffusionBridge("vp")
    with pytest.raises(ValueError, match="source_log_prob"):
        log_likelihood(exact_field(br, None, target, "x1"), x, cond=x, t_start=0.1, t_end=0.9)
    with pytest.raises(ValueError, match="shape"):
        log_likelihood(field, x, source_log_prob=lambda z: z.sum())
