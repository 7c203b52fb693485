"""DDBM bridge preconditioning (``genlab.models.bridge_precond``; Zhou et al. ICLR'24, App. A.4;
``reference/interpolants.md`` §5): coefficients against DDBM's own log-SNR formulas, EDM as the Gaussian-source
special case, unit-variance input/target, the invertible re-parametrisation with an exact field, the
``bridge_karras`` loss minimised by the exact denoiser on a conditional GMM, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from genlab.analytic import GaussianMixture
from genlab.analytic.fields import ConditionalGMM, exact_field
from genlab.interpolants import DiffusionBridge, RectifiedFlow, VPDiffusion
from genlab.models import DDBMPrecond, EDMPrecond, Field, bridge_coeffs, edm_coeffs

F64 = torch.float64


def _ddbm_reference_vp(tau: Tensor, beta_d: float = 2.0, beta_min: float = 0.1, sd: float = 0.5):
    """DDBM's ``get_bridge_scalings`` for ``pred_mode='vp'`` (its log-SNR form, written out independently)."""

    def logsnr(s):
        return -torch.log(torch.expm1(0.5 * s**2 * beta_d + s * beta_min))

    def logs(s):
        return -0.25 * s**2 * beta_d - 0.5 * s * beta_min

    one = torch.ones_like(tau)
    a = (logsnr(one) - logsnr(tau) + logs(tau) - logs(one)).exp()
    b = -torch.expm1(logsnr(one) - logsnr(tau)) * logs(tau).exp()
    c2 = -torch.expm1(logsnr(one) - logsnr(tau)) * (2 * logs(tau) - logsnr(tau)).exp()
    big_a = a**2 * sd**2 + b**2 * sd**2 + c2
    c_in = big_a.rsqrt()
    return (b * sd**2 / big_a, torch.sqrt(a**2 * sd**4 + sd**2 * c2) * c_in, c_in)


def _ddbm_reference_ve(tau: Tensor, smax: float = 80.0, sd: float = 0.5):
    r = tau**2 / smax**2
    big_a = r**2 * sd**2 + (1 - r) ** 2 * sd**2 + tau**2 * (1 - r)
    c_in = big_a.rsqrt()
    return ((1 - r) * sd**2 / big_a, torch.sqrt(r**2 * sd**4 + sd**2 * tau**2 * (1 - r)) * c_in, c_in)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_coefficients_match_ddbm_reference(kind):
    br = DiffusionBridge(kind)
    big_t = 1.0 if kind == "vp" else 80.0
    tau = torch.linspace(1e-3, big_t * 0.999, 41, dtype=F64)
    t = 1 - tau / big_t
    x = torch.zeros(41, 1, dtype=F64)
    got = bridge_coeffs(br, t, x)
    ref = _ddbm_reference_vp(tau) if kind == "vp" else _ddbm_reference_ve(tau)
    for g, r in zip((got.c_skip, got.c_out, got.c_in), ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got.c_noise, 0.25 * torch.log(tau))
    torch.testing.assert_close(got.weight, got.c_out.pow(-2))


def test_gaussian_source_reduces_to_edm():
    vp = VPDiffusion()
    t = torch.linspace(0.01, 0.99, 17, dtype=F64)
    x = torch.zeros(17, 2, dtype=F64)
    b = bridge_coeffs(vp, t, x, sigma_data=0.7, sigma_source=1.0)
    e = edm_coeffs(vp, t, x, sigma_data=0.7)
    for name in ("c_in", "c_skip", "c_out", "weight"):
        torch.testing.assert_close(getattr(b, name), getattr(e, name))


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_unit_variance_input_and_target(kind):
    """With independent ends of std σ_0 = σ_T = 0.5: Var(c_in x_t) = 1 and Var((x1 − c_skip x_t)/c_out) = 1."""
    br = DiffusionBridge(kind)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    for t in (0.1, 0.5, 0.9):
        x0 = 0.5 * torch.randn(n, 1, generator=g, dtype=F64)
        x1 = 0.5 * torch.randn(n, 1, generator=g, dtype=F64)
        path = br.sample(x0, x1, torch.full((n,), t, dtype=F64), generator=g)
        k = bridge_coeffs(br, t, x1)
        assert abs(float((k.c_in[0] * path.x_t).var()) - 1) < 0.02
        target = (x1 - k.c_skip[0] * path.x_t) / k.c_out[0]
        assert abs(float(target.var()) - 1) < 0.02


def _cgmm() -> ConditionalGMM:
    base = GaussianMixture(torch.tensor([[0.6, -0.4], [-0.5, 0.3]], dtype=F64), 0.05)
    return ConditionalGMM(base, scale=0.5)


@pytest.mark.parametrize("kind", ["vp", "ve"])
def test_preconditioning_is_an_invertible_reparametrisation(kind):
    """F := (D* − c_skip x)/c_out evaluated through c_in and c_noise gives back the exact denoiser D*."""
    br = DiffusionBridge(kind)
    exact = exact_field(br, None, _cgmm(), "x1")
    pre = DDBMPrecond(br)

    def raw(u: Tensor, c_noise: Tensor, cond: Tensor) -> Tensor:
        tau = torch.exp(4 * c_noise.to(F64))
        t = 1 - tau / pre.T
        k = pre.coeffs(t, u)
        x = u / k.c_in[:, None]
        return (exact(x, t, cond) - k.c_skip[:, None] * x) / k.c_out[:, None]

    field = Field(raw, br, "x1", precond=pre)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 2, generator=g, dtype=F64)
    t = torch.rand(64, generator=g, dtype=F64) * 0.98 + 0.01
    x_t = br.sample(x0, _cgmm().sample(x0, generator=g), t, generator=g).x_t
    torch.testing.assert_close(field(x_t, t, x0), exact(x_t, t, x0), rtol=1e-9, atol=1e-10)
    # and with the network time input "t", too
    pre_t = DDBMPrecond(br, noise_input="t")
    f_t = Field(lambda u, tt, c: raw(u, 0.25 * torch.log(pre.T * (1 - tt.to(F64))), c), br, "x1", precond=pre_t)
    torch.testing.assert_close(f_t(x_t, t, x0), exact(x_t, t, x0), rtol=1e-9, atol=1e-10)


def test_bridge_loss_is_minimised_by_the_exact_denoiser():
    """The bridge_karras-weighted loss at DDBM's τ law is minimised (over D* + δh) at δ = 0 by the exact field."""
    br = DiffusionBridge("vp")
    cg = _cgmm()
    exact = exact_field(br, None, cg, "x1")
    pre = DDBMPrecond(br)
    g = torch.Generator().manual_seed(3)
    n = 40_000
    x0 = torch.randn(n, 2, generator=g, dtype=F64)
    x1 = cg.sample(x0, generator=g)
    t = pre.train_times(n, generator=g)
    tau = pre.T * (1 - t)
    assert float(tau.min()) >= pre.tau_min and float(tau.max()) <= pre.T
    path = br.sample(x0, x1, t, generator=g)
    w = pre.loss_weight(path.t, path.x_t)
    d_star = exact(path.x_t, path.t, x0)
    k = pre.coeffs(path.t, path.x_t)
    # perturbations measured in the network's units (c_out · h), as a trained F would err
    for h in (torch.ones_like(d_star), torch.tanh(path.x_t), x0):
        h = k.c_out[:, None] * h
        cross = float((w * ((d_star - x1) * h).sum(1)).mean())
        quad = float((w * (h * h).sum(1)).mean())
        assert abs(cross / quad) < 0.03, (cross, quad)  # the minimiser δ* = −cross/quad is ≈ 0
        for delta in (0.1, -0.1):
            assert (w * ((d_star + delta * h - x1) ** 2).sum(1)).mean() > (w * ((d_star - x1) ** 2).sum(1)).mean()
    # a wrong denoiser (one that ignores the condition) has a clearly larger loss
    wrong = exact_field(br, None, ConditionalGMM(cg.base, scale=0.0), "x1")(path.x_t, path.t, x0)
    loss = lambda d: float((w * ((d - x1) ** 2).sum(1)).mean())
    assert loss(wrong) > 1.1 * loss(d_star)


def test_train_times_follow_ddbm_real_uniform():
    pre = DDBMPrecond(DiffusionBridge("ve"))
    t = pre.train_times(100_000, generator=torch.Generator().manual_seed(0))
    tau = pre.T * (1 - t)
    assert pre.T == 80.0 and pre.tau_min == 0.002
    assert float(tau.min()) >= 0.002 and float(tau.max()) <= 80.0
    assert abs(float(tau.mean()) - (80.0 + 0.002) / 2) < 0.3


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="conditional_source=True"):
        DDBMPrecond(VPDiffusion())
    with pytest.raises(ValueError, match="conditional_source=True"):
        DDBMPrecond(RectifiedFlow())
    with pytest.raises(TypeError, match="Interpolant"):
        DDBMPrecond("vp")  # type: ignore[arg-type]
    br = DiffusionBridge("vp")
    with pytest.raises(ValueError, match="sigma_data"):
        DDBMPrecond(br, sigma_data=0.0)
    with pytest.raises(ValueError, match="cov"):
        DDBMPrecond(br, cov=1.0)
    with pytest.raises(ValueError, match="noise_input"):
        DDBMPrecond(br, noise_input="sigma")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tau_min"):
        DDBMPrecond(br, tau_min=2.0)
    assert math.isfinite(float(bridge_coeffs(br, 0.0, torch.zeros(1, 1)).weight))
    assert isinstance(EDMPrecond(VPDiffusion()), EDMPrecond)
