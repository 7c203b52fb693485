"""DDBM/DBIM bridges in genlab time: coefficients against the reference logsnr formulas, the DDBM PF-ODE and
reverse SDE drifts against genlab's converted velocity / forward drift, and DBIM's η = 1 step
(reference/interpolants.md §5, §9 items 7–8; Zhou et al. ICLR'24, Zheng et al. ICLR'25)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from genlab.interpolants import DDBMSchedule, DiffusionBridge

BETA_D, BETA_MIN = 2.0, 0.1


def _vp(tau: torch.Tensor) -> dict[str, torch.Tensor]:
    """DDBM VP diffusion written out independently: α_τ, ρ_τ, f, g² (reference §5 table)."""
    alpha = torch.exp(-0.5 * BETA_MIN * tau - 0.25 * BETA_D * tau**2)
    rho = torch.sqrt(torch.exp(BETA_MIN * tau + 0.5 * BETA_D * tau**2) - 1)
    return {"alpha": alpha, "rho": rho, "f": -0.5 * (BETA_MIN + BETA_D * tau), "g2": BETA_MIN + BETA_D * tau}


def _ve(tau: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"alpha": torch.ones_like(tau), "rho": tau.clone(), "f": torch.zeros_like(tau), "g2": 2 * tau}


def _abc(diff, tau: torch.Tensor, big_t: float) -> tuple[torch.Tensor, ...]:
    """DDBM's logsnr form: a = (SNR_T/SNR_τ)(α_τ/α_T), b = α_τ(1 − SNR_T/SNR_τ), c² = σ_τ²(1 − SNR_T/SNR_τ)."""
    d, d_t = diff(tau), diff(torch.full_like(tau, big_t))
    snr, snr_t = 1 / d["rho"] ** 2, 1 / d_t["rho"] ** 2
    a = (snr_t / snr) * (d["alpha"] / d_t["alpha"])
    b = d["alpha"] * (1 - snr_t / snr)
    sigma = d["alpha"] * d["rho"]
    c = torch.sqrt(sigma**2 * (1 - snr_t / snr))
    return a, b, c


CASES = [
    ("vp", _vp, 1.0, DiffusionBridge("vp")),
    ("ve", _ve, 80.0, DiffusionBridge("ve", sigma_max=80.0)),
    ("ve-small", _ve, 3.0, DiffusionBridge("ve", sigma_max=3.0)),
]


@pytest.mark.parametrize(("name", "diff", "big_t", "interp"), CASES, ids=[c[0] for c in CASES])
def test_bridge_coefficients_equal_logsnr_form(name, diff, big_t, interp) -> None:
    t = torch.tensor([0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99], dtype=torch.float64)
    tau = big_t * (1 - t)
    a, b, c = _abc(diff, tau, big_t)
    co = interp.schedule(t)
    torch.testing.assert_close(co.alpha, a, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(co.beta, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(co.gamma, c, rtol=1e-10, atol=1e-12)
    if name.startswith("ve"):  # VE closed form a = τ²/T², b = 1 − τ²/T², c² = τ²(1 − τ²/T²)
        u = tau**2 / big_t**2
        torch.testing.assert_close(co.alpha, u, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(co.gamma**2, tau**2 * (1 - u), rtol=1e-10, atol=1e-12)
    assert DDBMSchedule(name[:2], sigma_max=big_t).T == big_t


def _ddbm_terms(diff, interp, x, x_t_cond, den, t, big_t):
    """s, h, f, g² of DDBM at τ = T(1 − t) for the state x, condition x_T and denoiser D (all float64)."""
    tau = big_t * (1 - t)
    d, d_t = diff(tau), diff(torch.full_like(tau, big_t))
    a, b, c = (v[:, None] for v in _abc(diff, tau, big_t))
    score = -(x - a * x_t_cond - b * den) / c**2
    abar = (d["alpha"] / d_t["alpha"])[:, None]
    rhobar2 = (d_t["rho"] ** 2 - d["rho"] ** 2)[:, None]
    h = (abar * x_t_cond - x) / (d["alpha"][:, None] ** 2 * rhobar2)
    return score, h, d["f"][:, None], d["g2"][:, None]


@pytest.mark.parametrize(("name", "diff", "big_t", "interp"), CASES, ids=[c[0] for c in CASES])
def test_ddbm_pf_ode_drift_equals_genlab_velocity(name, diff, big_t, interp) -> None:
    g = torch.Generator().manual_seed(3)
    n = 7
    t = torch.tensor([0.02, 0.15, 0.3, 0.5, 0.65, 0.8, 0.97], dtype=torch.float64)
    x, x_cond, den = (torch.randn(n, 3, generator=g, dtype=torch.float64) for _ in range(3))
    if name == "ve":
        x = x * 10  # states of the size a VE bridge visits
    score, h, f, g2 = _ddbm_terms(diff, interp, x, x_cond, den, t, big_t)
    if name.startswith("ve"):  # the reference's VE form of h
        tau = (big_t * (1 - t))[:, None]
        torch.testing.assert_close(h, (x_cond - x) / (big_t**2 - tau**2), rtol=1e-12, atol=1e-14)
    drift_tau = f * x - g2 * (0.5 * score - h)  # PF-ODE, guidance w = 1
    velocity = interp.convert(den, "x1", "velocity", x, t, x0=x_cond)
    torch.testing.assert_close(drift_tau, -velocity / big_t, rtol=1e-8, atol=1e-8 * float(drift_tau.abs().max()))
    # score conversion is DDBM's s = −(x − a x_T − b D)/c²
    torch.testing.assert_close(interp.convert(den, "x1", "score", x, t, x0=x_cond), score, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(("name", "diff", "big_t", "interp"), CASES, ids=[c[0] for c in CASES])
def test_ddbm_reverse_sde_equals_genlab_forward_drift(name, diff, big_t, interp) -> None:
    # DDBM reverse SDE dx = [f x − g²(s − h)]dτ + g dw̄, τ ↓; in genlab time it is the forward SDE
    # dX = [b + ε s]dt + √(2ε) dW with ε = ½ g² T (reference §5 "Unification").
    g = torch.Generator().manual_seed(4)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    x, x_cond, den = (torch.randn(4, 2, generator=g, dtype=torch.float64) for _ in range(3))
    score, h, f, g2 = _ddbm_terms(diff, interp, x, x_cond, den, t, big_t)
    drift_tau = f * x - g2 * (score - h)
    eps = 0.5 * g2[:, 0] * big_t
    fwd = interp.convert(den, "x1", "drift_fwd", x, t, x0=x_cond, eps=eps)
    torch.testing.assert_close(fwd, -big_t * drift_tau, rtol=1e-8, atol=1e-8 * float(fwd.abs().max()))


@pytest.mark.parametrize(("name", "diff", "big_t", "interp"), CASES, ids=[c[0] for c in CASES])
def test_dbim_markov_omega_and_eta1_coefficient(name, diff, big_t, interp) -> None:
    s = torch.tensor([0.1, 0.3, 0.5, 0.8], dtype=torch.float64)
    t = torch.tensor([0.2, 0.45, 0.9, 0.95], dtype=torch.float64)
    x = torch.zeros(4, 1, dtype=torch.float64)
    d_s, d_t = diff(big_t * (1 - s)), diff(big_t * (1 - t))
    ref = d_t["alpha"] * d_t["rho"] * torch.sqrt(1 - d_t["rho"] ** 2 / d_s["rho"] ** 2)  # DBIM eq. 11
    omega = interp.markov_omega(s, t, x)
    torch.testing.assert_close(omega, ref, rtol=1e-12, atol=1e-14)
    # η = 1: k = √(c_t² − ω²)/c_s = (α_t/α_s)(ρ_t²/ρ_s²); read k off implicit_step with zero ends and ξ = 0.
    x_s = torch.ones(4, 1, dtype=torch.float64)
    zero = torch.zeros_like(x_s)
    k = interp.implicit_step(x_s, s, t, zero, zero, omega=omega, xi=zero)[:, 0]
    k_ref = (d_t["alpha"] / d_s["alpha"]) * (d_t["rho"] ** 2 / d_s["rho"] ** 2)
    torch.testing.assert_close(k, k_ref, rtol=1e-12, atol=1e-14)
    # c_t² − ω² = α_t²ρ_t⁴(1/ρ_s² − 1/ρ_T²) ≥ 0 (reference §5)
    d_big = diff(torch.full_like(s, big_t))
    c_t = interp.schedule(t).gamma
    lhs = c_t**2 - omega**2
    rhs = d_t["alpha"] ** 2 * d_t["rho"] ** 4 * (1 / d_s["rho"] ** 2 - 1 / d_big["rho"] ** 2)
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-12)
    assert bool((lhs >= 0).all())


def test_dbim_point_mass_reaches_the_data_in_any_number_of_steps() -> None:
    # Point-mass data (D ≡ m): DBIM with η = 0 from any x_T reaches m exactly (reference §9 item 9).
    interp = DiffusionBridge("vp")
    g = torch.Generator().manual_seed(0)
    x_cond = torch.randn(5, 2, generator=g, dtype=torch.float64)
    m = torch.tensor([[0.7, -1.3]], dtype=torch.float64).expand(5, 2)
    for n_steps in (1, 3, 10):
        grid = torch.linspace(1e-3, 1.0, n_steps + 1, dtype=torch.float64)
        c = interp.schedule(grid[:1])
        x = c.alpha * x_cond + c.beta * m + c.gamma * torch.randn(5, 2, generator=g, dtype=torch.float64)
        for s, t in itertools.pairwise(grid):
            x = interp.implicit_step(x, s, t, x_cond, m)
        torch.testing.assert_close(x, m, rtol=0, atol=1e-12)
    assert math.isfinite(float(interp.markov_omega(0.0, 0.5, x).max()))
