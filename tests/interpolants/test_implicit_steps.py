"""Implicit steps (DDIM / IADB / DBIM / Brownian-bridge posterior), Markovian ω, the semilinear structure and the
quadratic loss (reference/interpolants.md §1.3, §3, §5, §8; §9 items 3d, 5, 9)."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import exact_field
from genlab.interpolants import (
    AlphaBlending,
    BrownianBridge,
    DiffusionBridge,
    Interpolant,
    RectifiedFlow,
    StochasticInterpolant,
    VEDiffusion,
    VPDiffusion,
)

DT = torch.float64


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


# ---------------------------------------------------------------------------------------------- implicit steps
@pytest.mark.parametrize("source", ["gaussian", "data"])
def test_omega0_on_rectified_flow_is_an_euler_step(source: str) -> None:
    # IADB ≡ Euler (reference §3): with ends consistent with x_s, re-blending at t equals x_s + (t − s)·b.
    interp = RectifiedFlow(source=source)
    x_s = _randn(5, 3, seed=0)
    x1_hat = _randn(5, 3, seed=1)
    s = torch.tensor([0.1, 0.2, 0.4, 0.6, 0.8], dtype=DT)
    t = s + torch.tensor([0.05, 0.1, 0.2, 0.3, 0.15], dtype=DT)
    if source == "gaussian":
        x0_hat = interp.convert(x1_hat, "x1", "x0", x_s, s)
    else:  # noise-free two-sided path: any x̂1 with x̂0 from the constraint x_s = (1 − s)x̂0 + s x̂1
        x0_hat = (x_s - s[:, None] * x1_hat) / (1 - s[:, None])
    vel = interp.convert(x1_hat, "x1", "velocity", x_s, s) if source == "gaussian" else x1_hat - x0_hat
    out = interp.implicit_step(x_s, s, t, x0_hat, x1_hat)
    torch.testing.assert_close(out, x_s + (t - s)[:, None] * vel, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_step_on_vp_equals_iadb_step_in_rescaled_variables(kind: str) -> None:
    # Reference §3 / §9.5: with a = β (signal), σ = α (noise): x̃ = x/(a + σ), α̃ = a/(a + σ); one DDIM step with an
    # arbitrary predictor equals one IADB (Euler) step x̃_t = x̃_s + (α̃_t − α̃_s)(x̂1 − ε̂).
    vp = VPDiffusion(kind)
    g = torch.Generator().manual_seed(3)
    x_s = torch.randn(6, 4, generator=g, dtype=DT)
    weight = torch.randn(4, 4, generator=g, dtype=DT)
    bias = torch.randn(4, generator=g, dtype=DT)
    x1_hat = x_s @ weight + bias  # arbitrary random linear predictor
    s, t = torch.tensor(0.3, dtype=DT), torch.tensor(0.55, dtype=DT)
    eps_hat = vp.convert(x1_hat, "x1", "noise", x_s, s)
    ddim = vp.implicit_step(x_s, s, t, eps_hat, x1_hat)
    cs, ct = vp.schedule(s[None]), vp.schedule(t[None])
    k_s, k_t = cs.alpha + cs.beta, ct.alpha + ct.beta
    at_s, at_t = cs.beta / k_s, ct.beta / k_t  # (1,) tensors: genlab times stay float64
    xt_s = x_s / k_s
    iadb = xt_s + (at_t - at_s) * (x1_hat - eps_hat)
    torch.testing.assert_close(ddim, k_t * iadb, rtol=1e-10, atol=1e-12)
    # the same IADB step through genlab's AlphaBlending implicit step in (x̃, α̃) time
    blend = AlphaBlending()
    torch.testing.assert_close(blend.implicit_step(xt_s, at_s, at_t, eps_hat, x1_hat), iadb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_vp_markov_omega_is_the_ddpm_posterior_std(kind: str) -> None:
    vp = VPDiffusion(kind)
    s = torch.tensor([0.05, 0.2, 0.5, 0.7], dtype=DT)
    t = torch.tensor([0.1, 0.5, 0.6, 0.99], dtype=DT)
    x = torch.zeros(4, 1, dtype=DT)
    omega = vp.markov_omega(s, t, x)
    cs, ct = vp.schedule(s), vp.schedule(t)
    abar_s, abar_t = cs.beta**2, ct.beta**2
    ddpm = torch.sqrt((1 - abar_t) / (1 - abar_s) * (1 - abar_s / abar_t))  # Ho et al. β̃ with ᾱ ratio
    torch.testing.assert_close(omega, ddpm, rtol=1e-10, atol=1e-14)
    nu_s, nu_t = cs.alpha / cs.beta, ct.alpha / ct.beta
    torch.testing.assert_close(omega, ct.alpha * torch.sqrt(1 - nu_t**2 / nu_s**2), rtol=1e-10, atol=1e-14)


def test_brownian_bridge_markov_step_is_the_bridge_posterior() -> None:
    sigma = 0.6
    bb = BrownianBridge(sigma)
    s = torch.tensor([0.1, 0.3, 0.5, 0.2], dtype=DT)
    t = torch.tensor([0.4, 0.35, 0.9, 0.95], dtype=DT)
    x_s, x0, x1 = (_randn(4, 2, seed=i) for i in range(3))
    omega = bb.markov_omega(s, t, x_s)
    var = sigma**2 * (t - s) * (1 - t) / (1 - s)
    torch.testing.assert_close(omega**2, var, rtol=1e-12, atol=1e-14)
    mean = bb.implicit_step(x_s, s, t, x0, x1, omega=omega, xi=torch.zeros_like(x_s))
    ref = x_s + ((t - s) / (1 - s))[:, None] * (x1 - x_s)
    torch.testing.assert_close(mean, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "interp"),
    [
        ("vp", VPDiffusion()),
        ("ve", VEDiffusion(sigma_min=0.05, sigma_max=5.0)),
        ("ddbm-vp", DiffusionBridge("vp")),
        ("ddbm-ve", DiffusionBridge("ve", sigma_max=4.0)),
        ("brownian-bridge", BrownianBridge(0.8)),
        ("si-two-sided", StochasticInterpolant("linear", gamma="brownian")),
    ],
)
def test_every_omega_preserves_the_bridge_marginal(name: str, interp: Interpolant) -> None:
    # With the oracle ends (x0, x1) fixed and x_s ~ N(α_s x0 + β_s x1, n_s²), the step to t with any ω ≤ n_t gives
    # x_t ~ N(α_t x0 + β_t x1, n_t²) (n = α for a Gaussian source, γ otherwise).
    n = 40000
    g = torch.Generator().manual_seed(7)
    x0 = torch.full((n, 1), 0.7, dtype=DT)
    x1 = torch.full((n, 1), -1.2, dtype=DT)
    s, t = torch.tensor([0.3], dtype=DT), torch.tensor([0.7], dtype=DT)
    cs, ct = interp.schedule(s), interp.schedule(t)
    noise_s = cs.alpha if interp.gaussian_source else cs.gamma
    noise_t = ct.alpha if interp.gaussian_source else ct.gamma
    eps0 = torch.randn(n, 1, generator=g, dtype=DT)
    if interp.gaussian_source:
        x_s = cs.beta * x1 + noise_s * eps0
        x0_hat = eps0  # the oracle ε; a Gaussian-source step re-derives it from x_s anyway
        mean_t = ct.beta * x1
    else:
        x_s = cs.alpha * x0 + cs.beta * x1 + noise_s * eps0
        x0_hat = x0
        mean_t = ct.alpha * x0 + ct.beta * x1
    markov = float(interp.markov_omega(s, t, x_s[:1])) if name != "si-two-sided" else 0.0
    for omega in {0.0, 0.5 * float(noise_t), markov, float(noise_t)}:
        xi = torch.randn(n, 1, generator=g, dtype=DT)
        x_t = interp.implicit_step(x_s, s, t, x0_hat, x1, omega=omega, xi=xi)
        m, v = float(x_t.mean()), float(x_t.var())
        target_v = float(noise_t) ** 2
        assert abs(m - float(mean_t[0])) < 5 * (target_v / n) ** 0.5 + 1e-12, (name, omega, m)
        assert abs(v - target_v) < 5 * target_v * (2 / n) ** 0.5 + 1e-12, (name, omega, v, target_v)


def test_python_float_times_are_exact_in_float64() -> None:
    vp = VPDiffusion()
    x = _randn(3, 2, seed=0)
    as_float = vp.implicit_step(x, 0.3, 0.55, x, 0.5 * x)
    as_tensor = vp.implicit_step(x, torch.tensor(0.3, dtype=DT), torch.tensor(0.55, dtype=DT), x, 0.5 * x)
    torch.testing.assert_close(as_float, as_tensor, rtol=1e-14, atol=1e-14)


def test_implicit_step_errors() -> None:
    vp = VPDiffusion()
    x = _randn(3, 2, seed=0)
    with pytest.raises(ValueError, match="omega exceeds"):
        vp.implicit_step(x, 0.3, 0.6, x, x, omega=2.0, xi=x)
    with pytest.raises(ValueError, match="xi"):
        vp.implicit_step(x, 0.3, 0.6, x, x, omega=0.1)
    with pytest.raises(ValueError, match="omega must be 0"):
        RectifiedFlow(source="data").implicit_step(x, 0.3, 0.6, x, x, omega=0.1, xi=x)
    with pytest.raises(ValueError, match="no Markovian"):
        StochasticInterpolant("linear", gamma="bsquared").markov_omega(0.2, 0.4, x)


# ---------------------------------------------------------------------------------------------- semilinear
def test_semilinear_structure() -> None:
    x = torch.zeros(3, 2, dtype=DT)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=DT)
    vp = VPDiffusion("cosine")
    sl = vp.semilinear(t, x)
    c = vp.schedule(t)
    torch.testing.assert_close(sl.lam, torch.log(c.beta / c.alpha), rtol=1e-14, atol=0)
    torch.testing.assert_close(sl.noise, c.alpha, rtol=0, atol=0)
    assert sl.known is None
    bridge = DiffusionBridge("vp")
    sl = bridge.semilinear(t, x)
    c = bridge.schedule(t)
    torch.testing.assert_close(sl.lam, torch.log(c.beta / c.gamma), rtol=1e-14, atol=0)  # DBIM λ = log(b/c)
    torch.testing.assert_close(sl.known, c.alpha, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown data source"):
        StochasticInterpolant("linear", gamma="brownian").semilinear(t, x)
    with pytest.raises(ValueError, match="no"):
        RectifiedFlow(source="data").semilinear(t, x)


# ---------------------------------------------------------------------------------------------- loss
def test_loss_is_half_mean_squared_error_with_weights_and_mask() -> None:
    rf = RectifiedFlow()
    x1 = _randn(4, 3, seed=1)
    ps = rf.sample(None, x1, torch.rand(4, dtype=DT), generator=torch.Generator().manual_seed(0))
    pred = _randn(4, 3, seed=2)
    err = 0.5 * (pred - ps.targets["velocity"]) ** 2
    torch.testing.assert_close(rf.loss(pred, ps, "velocity"), err.mean())
    w = torch.tensor([1.0, 2.0, 0.0, 0.5], dtype=DT)
    torch.testing.assert_close(rf.loss(pred, ps, "velocity", w), (err.mean(1) * w).mean())
    mask = (torch.arange(3) < 2).to(DT).expand(4, 3)
    torch.testing.assert_close(rf.loss(pred, ps, "velocity", mask=mask), (err * mask).mean())
    with pytest.raises(ValueError, match="weight must have shape"):
        rf.loss(pred, ps, "velocity", torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match="pred shape"):
        rf.loss(pred[:, :2], ps, "velocity")


@pytest.mark.parametrize("antithetic", [False, True], ids=["plain", "antithetic"])
@pytest.mark.parametrize("path", ["si-linear-brownian", "rectified-flow"])
def test_loss_is_minimised_by_the_exact_field(path: str, antithetic: bool, gmm_source_2d, gmm_target_2d) -> None:
    if path == "rectified-flow":
        interp, source = RectifiedFlow(), "gaussian"
    else:
        interp, source = StochasticInterpolant("linear", gamma="brownian"), gmm_source_2d
    field = exact_field(interp, source, gmm_target_2d, "velocity")
    n = 4000
    g = torch.Generator().manual_seed(0)
    x1 = gmm_target_2d.sample(n, generator=g)
    x0 = None if source == "gaussian" else gmm_source_2d.sample(n, generator=g)
    t = torch.rand(n, generator=g, dtype=DT)
    ps = interp.sample(x0, x1, t, generator=g, antithetic=antithetic)
    with torch.no_grad():
        exact = field(ps.x_t, ps.t)
    base = float(interp.loss(exact, ps, "velocity"))
    smooth = torch.stack([torch.sin(ps.x_t[:, 1] + ps.t), torch.cos(ps.x_t[:, 0] * ps.t)], 1)
    for delta in (torch.tensor([0.3, -0.2], dtype=DT).expand_as(exact), 0.3 * smooth, -0.3 * smooth):
        assert base < float(interp.loss(exact + delta, ps, "velocity")), delta[:2]
    # and the excess is ½E|δ|² up to Monte-Carlo error (the cross term E[(b − target)·δ] vanishes)
    delta = 0.3 * smooth
    excess = float(interp.loss(exact + delta, ps, "velocity")) - base
    half = float(0.5 * (delta**2).mean())
    assert abs(excess - half) < 0.6 * half, (excess, half)
