"""SDE samplers: the ε → 0 limits, one-step formulas, named ε(t), moments on the exact GMM field, EDM Alg. 2."""

from __future__ import annotations

import math

import pytest
import torch
from gaussian_oracle import gaussian_field, gaussian_flow_map

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import (
    DiffusionBridge,
    RectifiedFlow,
    StochasticInterpolant,
    VEDiffusion,
    VPDiffusion,
)
from genlab.samplers import (
    EDMChurn,
    Euler,
    EulerMaruyama,
    Heun,
    NoiseStream,
    StochasticHeun,
    diffusion_coefficient,
    karras,
    log_snr,
    uniform,
)
from genlab.utils import randn_per_sample

F64 = torch.float64
M = torch.tensor([1.0, -0.5], dtype=F64)
S = torch.tensor([0.5, 0.8], dtype=F64)
GMM = GaussianMixture(torch.tensor([[1.5, 0.5], [-1.0, -1.0]], dtype=F64), torch.tensor([0.3, 0.5], dtype=F64) ** 2,
                      torch.tensor([0.4, 0.6], dtype=F64))


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _x(n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _assert_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, k: float = 4.0) -> None:
    """Mean and covariance within k standard errors (plus a small allowance for the O(h) bias)."""
    n = x.shape[0]
    var = torch.diagonal(cov)
    se_mean = torch.sqrt(var / n)
    assert bool(((x.mean(0) - mean).abs() < k * se_mean + 0.01).all()), (x.mean(0), mean)
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / n)
    emp = torch.cov(x.T)
    assert bool(((emp - cov).abs() < k * se_cov + 0.01).all()), (emp, cov)


# ----------------------------------------------------------------------------------------------- ε → 0 limits
def test_zero_noise_limits_are_the_ode_solvers():
    rf = RectifiedFlow()
    field = gaussian_field(rf, M, S, kind="velocity")
    grid = uniform(7, t_end=1 - 1e-3)
    x = _x()
    gen = torch.Generator().manual_seed(3)
    em = EulerMaruyama(eps=0.0).sample(field, x, grid, generator=gen).x
    assert float((em - Euler().sample(field, x, grid).x).abs().max()) < 1e-12
    edm_var = StochasticHeun(eps=0.0, variant="edm").sample(field, x, grid, generator=gen).x
    assert float((edm_var - Heun().sample(field, x, grid).x).abs().max()) < 1e-12
    # interflow placement: both drifts at t + h
    ref = x.clone()
    for i in range(7):
        t1, h = grid[i + 1], grid[i + 1] - grid[i]
        k1 = field(ref, t1)
        k2 = field(ref + h * k1, t1)
        ref = ref + h / 2 * (k1 + k2)
    out = StochasticHeun(eps=0.0).sample(field, x, grid, generator=gen).x
    assert float((out - ref).abs().max()) < 1e-12
    # ... which is only first order in the ODE limit, unlike the edm variant
    exact = gaussian_flow_map(rf, M, S, x, 0.0, float(grid[-1]))
    assert float((out - exact).abs().max()) > 10 * float((edm_var - exact).abs().max())


# ----------------------------------------------------------------------------------------------- one-step formulas
@pytest.mark.parametrize("forward", [True, False])
def test_euler_maruyama_one_step_formula(forward):
    """x' = x + h(b ± εs) + √(2ε|h|)ξ: forward drift b_F = b + εs, backward b_B = b − εs (SI §2.3)."""
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    s, t = (0.3, 0.45) if forward else (0.45, 0.3)
    grid = torch.tensor([s, t], dtype=F64)
    x = _x()
    eps = 0.7
    out = EulerMaruyama(eps=eps).sample(field, x, grid, generator=torch.Generator().manual_seed(5)).x
    xi = NoiseStream(x, torch.Generator().manual_seed(5))()
    b = field.predict(x, s, "velocity")
    score = field.predict(x, s, "score")
    sign = 1.0 if forward else -1.0
    ref = x + (t - s) * (b + sign * eps * score) + math.sqrt(2 * eps * abs(t - s)) * xi
    assert float((out - ref).abs().max()) < 1e-12
    # final_noise=False drops the noise of the last (here: only) step
    det = EulerMaruyama(eps=eps, final_noise=False).sample(field, x, grid,
                                                           generator=torch.Generator().manual_seed(9)).x
    assert float((det - (ref - math.sqrt(2 * eps * abs(t - s)) * xi)).abs().max()) < 1e-12


def test_named_diffusion_coefficients():
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    s = 1 - t
    # VP (Song et al.): the reverse-diffusion ε is ½β(s) with β(s) = β_min + s(β_max − β_min)
    vp = VPDiffusion()
    ref = 0.5 * (0.1 + s * (20.0 - 0.1))
    assert torch.allclose(diffusion_coefficient("score_sde", vp, t), ref, rtol=1e-12)
    # VE: ½ d(σ²)/ds = σ² log(σ_max/σ_min)
    ve = VEDiffusion()
    sig = 0.002 * (80 / 0.002) ** s
    assert torch.allclose(diffusion_coefficient("score_sde", ve, t), sig**2 * math.log(80 / 0.002), rtol=1e-12)
    # rectified flow: α²·d/dt log(β/α) = (1 − t)/t
    assert torch.allclose(diffusion_coefficient("score_sde", RectifiedFlow(), t), (1 - t) / t, rtol=1e-12)
    # DDBM VP bridge: ½ g(τ)² T with g² = β_min + β_d τ
    br = DiffusionBridge("vp")
    assert torch.allclose(diffusion_coefficient("score_sde", br, t), 0.5 * (0.1 + 2.0 * s), rtol=1e-12)
    # noise_sq: the squared coefficient of the Gaussian slot
    c = vp.schedule.coeffs(t)
    assert torch.allclose(diffusion_coefficient("noise_sq", vp, t), c.alpha**2, rtol=1e-14)
    cb = br.schedule.coeffs(t)
    assert torch.allclose(diffusion_coefficient("noise_sq", br, t), cb.gamma**2, rtol=1e-14)
    # callables and floats
    assert torch.allclose(diffusion_coefficient(lambda u: 2 * u, vp, t), 2 * t)
    assert torch.equal(diffusion_coefficient(0.25, vp, t), torch.full_like(t, 0.25))
    # errors name the problem
    with pytest.raises(ValueError, match="score_sde"):
        diffusion_coefficient("score_sde", StochasticInterpolant("linear", gamma="brownian"), t)
    with pytest.raises(ValueError, match="not finite"):
        diffusion_coefficient("score_sde", RectifiedFlow(), torch.tensor([0.0], dtype=F64))
    with pytest.raises(ValueError, match="unknown eps"):
        diffusion_coefficient("ddpm", vp, t)
    with pytest.raises(ValueError, match="unknown eps"):
        EulerMaruyama(eps="ddpm")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        EulerMaruyama(eps=-1.0)


def test_score_sde_reaches_the_gaussian_marginal():
    """With ε = ½β(s) the forward SDE is VP's reverse diffusion; it ends at N(βm, β²s² + α²)."""
    vp = VPDiffusion()
    field = gaussian_field(vp, M, S)
    grid = log_snr(300, vp)
    n = 4000
    gen = torch.Generator().manual_seed(0)
    x = randn_per_sample((n, 2), generator=gen, dtype=F64) * float(vp.schedule.coeffs(grid[:1]).alpha)
    out = EulerMaruyama(eps="score_sde", final_noise=False).sample(field, x, grid, generator=gen).x
    c = vp.schedule.coeffs(grid[-1:])
    _assert_moments(out, c.beta * M, torch.diag(c.beta**2 * S**2 + c.alpha**2))


# ----------------------------------------------------------------------------------------------- exact GMM moments
@pytest.mark.slow
@pytest.mark.parametrize("name", ["euler_maruyama", "sde_heun"])
def test_sde_carries_source_to_gmm_target(name):
    rf = RectifiedFlow()
    field = exact_field(rf, "gaussian", GMM, "velocity")
    gen = torch.Generator().manual_seed(0)
    x0 = randn_per_sample((4000, 2), generator=gen, dtype=F64)
    sampler = EulerMaruyama(eps=0.5) if name == "euler_maruyama" else StochasticHeun(eps=0.5)
    # the stochastic Heun step evaluates the score at the last grid time: stop where it is finite
    grid = uniform(500) if name == "euler_maruyama" else uniform(500, t_end=1 - 1e-3)
    res = sampler.sample(field, x0, grid, generator=gen)
    assert res.nfe == sampler.expected_nfe(500)
    _assert_moments(res.x, GMM.mean, GMM.cov)


@pytest.mark.slow
def test_two_sided_si_drift_fields_generate_and_encode():
    """Two-sided SI (linear, γ = √(t(1−t))) between a Gaussian and the GMM, with b_F and b_B fields (ε = 0.5)."""
    si = StochasticInterpolant("linear", gamma="brownian")
    src = GaussianMixture(torch.zeros(1, 2, dtype=F64), 1.0)
    fwd = exact_field(si, src, GMM, "drift_fwd", eps=0.5)
    bwd = exact_field(si, src, GMM, "drift_bwd", eps=0.5)
    gen = torch.Generator().manual_seed(1)
    x0 = src.sample(4000, generator=gen)
    out = EulerMaruyama().sample(fwd, x0, uniform(500), generator=gen).x  # eps=None: the field's own ε
    _assert_moments(out, GMM.mean, GMM.cov)
    x1 = GMM.sample(4000, generator=gen)
    back = EulerMaruyama(eps=0.5).sample(bwd, x1, uniform(500, reverse=True), generator=gen).x
    _assert_moments(back, torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))


def test_drift_field_constraints():
    si = StochasticInterpolant("linear", gamma="brownian")
    src = GaussianMixture(torch.zeros(1, 2, dtype=F64), 1.0)
    fwd = exact_field(si, src, GMM, "drift_fwd", eps=0.5)
    x = _x()
    with pytest.raises(ValueError, match="eps=0.5"):
        EulerMaruyama(eps=1.0).sample(fwd, x, uniform(3))
    with pytest.raises(ValueError, match="eps_scale=1"):
        EulerMaruyama(eps_scale=2.0).sample(fwd, x, uniform(3))
    with pytest.raises(ValueError, match="drift_bwd"):
        EulerMaruyama().sample(fwd, x, uniform(3, reverse=True))
    vel = exact_field(si, src, GMM, "velocity")
    with pytest.raises(ValueError):
        StochasticHeun().sample(vel, x, uniform(3))


# ----------------------------------------------------------------------------------------------- EDM Alg. 2
def _edm_reference(x, grid, interp, churn, tmin, tmax, noise_scale, gen_seed, final_euler=False):
    """EDM Alg. 2 written directly in σ-space with the VE-form Gaussian denoiser D(x̃; σ)."""
    def denoise(xs, sig):
        return M + S**2 / (S**2 + sig**2) * (xs - M)

    c = interp.schedule.coeffs(grid)
    sig = (c.alpha / c.beta).tolist()
    n = grid.numel() - 1
    stream = NoiseStream(x, torch.Generator().manual_seed(gen_seed))
    xs = x / c.beta[0]
    g_max = min(churn / n, math.sqrt(2) - 1)
    for i in range(n):
        gamma = g_max if tmin <= sig[i] <= tmax else 0.0
        sig_hat = sig[i] * (1 + gamma)
        if gamma > 0:
            xs = xs + math.sqrt(sig_hat**2 - sig[i] ** 2) * noise_scale * stream()
        d = (xs - denoise(xs, sig_hat)) / sig_hat
        x_next = xs + (sig[i + 1] - sig_hat) * d
        if not (final_euler and i == n - 1):
            d2 = (x_next - denoise(x_next, sig[i + 1])) / sig[i + 1]
            x_next = xs + (sig[i + 1] - sig_hat) * (d + d2) / 2
        xs = x_next
    return xs * c.beta[-1]


@pytest.mark.parametrize("path", ["vp", "rf"])
@pytest.mark.parametrize("churn", [0.0, 5.0])
def test_edm_matches_algorithm_2(path, churn):
    """genlab's EDM in t equals EDM Alg. 2 in σ-space (t̂ from snr_inverse for VP, bisection for RF)."""
    interp = VPDiffusion() if path == "vp" else RectifiedFlow()
    field = gaussian_field(interp, M, S)
    grid = karras(8, interp, t_start=0.05 if path == "rf" else None)
    x = _x() * float(interp.schedule.coeffs(grid[:1]).alpha)
    sampler = EDMChurn(s_churn=churn, s_tmin=0.05, s_tmax=10.0, s_noise=1.003)
    res = sampler.sample(field, x, grid, generator=torch.Generator().manual_seed(4))
    ref = _edm_reference(x, grid, interp, churn, 0.05, 10.0, 1.003, 4)
    assert res.nfe == sampler.expected_nfe(8) == 16
    assert float((res.x - ref).abs().max()) < 1e-9
    if churn > 0:  # the churn does something
        det = EDMChurn(s_churn=0.0).sample(field, x, grid).x
        assert float((det - res.x).abs().max()) > 1e-3


def test_edm_churn_preserves_gmm_marginal():
    vp = VPDiffusion()
    field = exact_field(vp, "gaussian", GMM, "noise")
    grid = karras(40, vp)
    gen = torch.Generator().manual_seed(2)
    x = randn_per_sample((3000, 2), generator=gen, dtype=F64) * float(vp.schedule.coeffs(grid[:1]).alpha)
    out = EDMChurn(s_churn=40.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0).sample(field, x, grid,
                                                                                       generator=gen).x
    c = vp.schedule.coeffs(grid[-1:])
    target_cov = c.beta**2 * GMM.cov + c.alpha**2 * torch.eye(2, dtype=F64)
    _assert_moments(out, c.beta * GMM.mean, target_cov)


def test_edm_bad_grids():
    rf = RectifiedFlow()
    field = gaussian_field(rf, M, S)
    x = _x()
    with pytest.raises(ValueError, match="finite noise-to-signal"):
        EDMChurn().sample(field, x, uniform(4))  # σ(0) = ∞ on rectified flow
    vfield = gaussian_field(rf, M, S, kind="velocity")
    with pytest.raises(ValueError, match="final_euler"):
        EDMChurn().sample(vfield, x, uniform(4, t_start=0.1))  # ends at σ = 0 (t = 1)
    out = EDMChurn(final_euler=True).sample(vfield, x, uniform(4, t_start=0.1))
    assert out.nfe == 7 and torch.isfinite(out.x).all()
    with pytest.raises(ValueError, match="increasing"):
        EDMChurn().sample(field, x, uniform(4, t_start=0.1, t_end=0.9, reverse=True))
    with pytest.raises(ValueError, match="gaussian_source"):
        EDMChurn().sample(exact_field(DiffusionBridge("vp"), None, GMM, "x1"), x, uniform(4, t_start=0.1,
                                                                                        t_end=0.9), cond=x)
