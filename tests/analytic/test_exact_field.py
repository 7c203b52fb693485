"""Exact fields between Gaussian-mixture ends (reference/interpolants.md §1.6, §9 item 3): the continuity equation,
the score against autograd of an independently written density, b = v − γγ̇s, ODE transport of the moments, the
closed-form 1-D rectified-flow map, and the exact bridge denoiser against the GMM posterior and Monte Carlo."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch.distributions import MultivariateNormal

from genlab.analytic import ConditionalGMM, GaussianMixture, exact_field, gmm_posterior, posterior_means
from genlab.interpolants import (
    DiffusionBridge,
    Interpolant,
    RectifiedFlow,
    StochasticInterpolant,
    VPDiffusion,
)
from genlab.models.field import Field

DT = torch.float64


# ------------------------------------------------------------------------------------- independent references
def _ddbm_vp_abc(t: float, beta_d: float = 2.0, beta_min: float = 0.1) -> tuple[float, float, float]:
    """DDBM VP bridge (a, b, c) at τ = 1 − t, written from reference §5."""

    def alpha_rho2(tau: float) -> tuple[float, float]:
        e = beta_min * tau + 0.5 * beta_d * tau**2
        return math.exp(-0.5 * e), math.expm1(e)

    al, r2 = alpha_rho2(1 - t)
    al_t, r2_t = alpha_rho2(1.0)
    return al / al_t * r2 / r2_t, al * (1 - r2 / r2_t), al * math.sqrt(r2 * (1 - r2 / r2_t))


def _coeffs(path: str, t: float) -> tuple[float, float, float]:
    if path == "si":
        return 1 - t, t, math.sqrt(t * (1 - t))
    if path == "rf":
        return 1 - t, t, 0.0
    return _ddbm_vp_abc(t)


def _log_rho(path: str, source, target: GaussianMixture, x0: torch.Tensor | None) -> Callable:
    """log ρ_t(x): a mixture over pairs (i, j) with m_ij = αμ0_i + βμ1_j, C_ij = α²C0_i + β²C1_j + γ²I."""
    d = target.dim
    if path == "rf":
        src_means, src_covs, src_w = torch.zeros(1, d, dtype=DT), torch.eye(d, dtype=DT)[None], torch.ones(1, dtype=DT)
    elif path == "bridge":
        src_means, src_covs, src_w = x0[None], torch.zeros(1, d, d, dtype=DT), torch.ones(1, dtype=DT)
    else:
        src_means, src_covs, src_w = source.means, source.covs, source.weights
    scale = 0.5 if path == "bridge" else 0.0
    tgt_means = target.means + (scale * x0[None] if x0 is not None else 0.0)

    def log_rho(x: torch.Tensor, t: float) -> torch.Tensor:
        a, b, g = _coeffs("ddbm" if path == "bridge" else path, t)
        terms = []
        for i in range(src_means.shape[0]):
            for j in range(tgt_means.shape[0]):
                cov = a**2 * src_covs[i] + b**2 * target.covs[j] + g**2 * torch.eye(d, dtype=DT)
                mvn = MultivariateNormal(a * src_means[i] + b * tgt_means[j], covariance_matrix=cov)
                terms.append(mvn.log_prob(x) + torch.log(src_w[i] * target.weights[j]))
        return torch.logsumexp(torch.stack(terms, -1), -1)

    return log_rho


def _setup(path: str, gmm_source_2d: GaussianMixture, gmm_target_2d: GaussianMixture):
    """(interpolant, field, log density, x0 cond, test points) for one path."""
    x0 = None
    if path == "si":
        interp: Interpolant = StochasticInterpolant("linear", gamma="brownian")
        field = exact_field(interp, gmm_source_2d, gmm_target_2d, "velocity")
    elif path == "rf":
        interp = RectifiedFlow()
        field = exact_field(interp, "gaussian", gmm_target_2d, "velocity")
    else:
        interp = DiffusionBridge("vp")
        field = exact_field(interp, None, ConditionalGMM(gmm_target_2d, scale=0.5), "velocity")
        x0 = torch.tensor([0.8, -0.6], dtype=DT)
    points = torch.tensor([[0.0, 0.0], [1.2, 1.0], [-1.5, 1.0], [0.5, -1.5], [2.0, -0.5]], dtype=DT)
    return interp, field, _log_rho(path, gmm_source_2d, gmm_target_2d, x0), x0, points


PATHS = ["si", "rf", "bridge"]


# ------------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("path", PATHS)
def test_continuity_equation(path: str, gmm_source_2d, gmm_target_2d) -> None:
    # ∂_t ρ + ∇·(b ρ) = 0 with central differences (h = 1e-5, float64).
    _, field, log_rho, x0, x = _setup(path, gmm_source_2d, gmm_target_2d)
    cond = None if x0 is None else x0.expand_as(x)
    h = 1e-5
    for t in (0.2, 0.5, 0.8):
        dt_rho = (log_rho(x, t + h).exp() - log_rho(x, t - h).exp()) / (2 * h)
        div = torch.zeros(x.shape[0], dtype=DT)
        for k in range(2):
            e = torch.zeros(2, dtype=DT)
            e[k] = h
            flux_p = field(x + e, torch.tensor(t, dtype=DT), cond)[:, k] * log_rho(x + e, t).exp()
            flux_m = field(x - e, torch.tensor(t, dtype=DT), cond)[:, k] * log_rho(x - e, t).exp()
            div = div + (flux_p - flux_m) / (2 * h)
        scale = float(dt_rho.abs().max())
        assert scale > 1e-4  # the check is not vacuous
        torch.testing.assert_close(dt_rho + div, torch.zeros_like(div), rtol=0, atol=1e-6 * scale, msg=f"t={t}")


@pytest.mark.parametrize("path", PATHS)
def test_score_equals_autograd_of_log_density(path: str, gmm_source_2d, gmm_target_2d) -> None:
    interp, _, log_rho, x0, x = _setup(path, gmm_source_2d, gmm_target_2d)
    target = ConditionalGMM(gmm_target_2d, scale=0.5) if path == "bridge" else gmm_target_2d
    source = None if path == "bridge" else ("gaussian" if path == "rf" else gmm_source_2d)
    score_field = exact_field(interp, source, target, "score")
    cond = None if x0 is None else x0.expand_as(x)
    for t in (0.1, 0.5, 0.9):
        xg = x.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(log_rho(xg, t).sum(), xg)
        torch.testing.assert_close(score_field(x, torch.tensor(t, dtype=DT), cond), ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("path", PATHS)
def test_velocity_is_v_minus_gdg_score_and_means_satisfy_the_constraint(path, gmm_source_2d, gmm_target_2d) -> None:
    interp, field, _, x0, x = _setup(path, gmm_source_2d, gmm_target_2d)
    target = ConditionalGMM(gmm_target_2d, scale=0.5) if path == "bridge" else gmm_target_2d
    source = None if path == "bridge" else ("gaussian" if path == "rf" else gmm_source_2d)
    cond = None if x0 is None else x0.expand_as(x)
    t = torch.tensor([0.15, 0.35, 0.5, 0.7, 0.9], dtype=DT)  # one time per point: the per-sample-t path
    pm = posterior_means(interp, x, t, source=source, target=target, x0=cond)
    x0_hat = cond if cond is not None else pm.x0
    c = interp.schedule(t)
    a, b, g, da, db, gdg = (v[:, None] for v in (c.alpha, c.beta, c.gamma, c.d_alpha, c.d_beta, c.gamma_dgamma))
    if path == "rf":  # the Gaussian source is the noise slot: x̂0 = −α s
        torch.testing.assert_close(pm.x0, -a * pm.score, rtol=1e-10, atol=1e-12)
        g, gdg = torch.zeros_like(g), torch.zeros_like(gdg)
    v = da * x0_hat + db * pm.x1
    torch.testing.assert_close(field(x, t, cond), v - gdg * pm.score, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a * x0_hat + b * pm.x1 - g**2 * pm.score, x, rtol=1e-10, atol=1e-12)


def test_one_sided_exact_kinds_agree_through_conversions(gmm_target_2d) -> None:
    x = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-2.0, 0.5]], dtype=DT)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=DT)
    for interp in (RectifiedFlow(), VPDiffusion("cosine")):
        x1_field = exact_field(interp, "gaussian", gmm_target_2d, "x1")
        for kind in ("velocity", "score", "noise", "x0"):
            direct = exact_field(interp, "gaussian", gmm_target_2d, kind)(x, t)
            torch.testing.assert_close(x1_field.predict(x, t, kind), direct, rtol=1e-10, atol=1e-12)
        fwd = exact_field(interp, "gaussian", gmm_target_2d, "drift_fwd", eps=0.4)
        vel = x1_field.predict(x, t, "velocity")
        score = x1_field.predict(x, t, "score")
        torch.testing.assert_close(fwd(x, t), vel + 0.4 * score, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fwd.predict(x, t, "drift_bwd", eps=0.1), vel - 0.1 * score, rtol=1e-10,
                                   atol=1e-12)
        torch.testing.assert_close(fwd.predict(x, t, "velocity"), vel, rtol=1e-10, atol=1e-12)
        eps_b = torch.tensor([0.4, 0.1, 0.7], dtype=DT)  # per-sample ε
        torch.testing.assert_close(fwd.predict(x, t, "drift_fwd", eps=eps_b), vel + eps_b[:, None] * score,
                                   rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fwd.predict(x, t, "drift_fwd", eps=0.4), fwd(x, t), rtol=0, atol=0)


def _heun(field: Field, x: torch.Tensor, steps: int) -> torch.Tensor:
    grid = torch.linspace(0, 1, steps + 1, dtype=DT)
    for t0, t1 in itertools.pairwise(grid):
        d0 = field(x, t0)
        d1 = field(x + (t1 - t0) * d0, t1)
        x = x + 0.5 * (t1 - t0) * (d0 + d1)
    return x


def _assert_moments(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, n_se: float = 4.5) -> None:
    n = x.shape[0]
    m = x.mean(0)
    se_m = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((m - mean).abs() < n_se * se_m + 1e-3).all()), (m, mean, se_m)
    r = x - mean
    prods = r[:, :, None] * r[:, None, :]
    emp = prods.mean(0)
    se_c = prods.std(0) / math.sqrt(n)
    assert bool(((emp - cov).abs() < n_se * se_c + 2e-3).all()), (emp, cov, se_c)


@pytest.mark.parametrize("path", ["rf", "si"])
def test_heun_ode_transports_source_moments_to_target(path: str, gmm_source_2d, gmm_target_2d) -> None:
    n = 2000
    g = torch.Generator().manual_seed(11)
    if path == "rf":
        field = exact_field(RectifiedFlow(), "gaussian", gmm_target_2d, "velocity")
        x = torch.randn(n, 2, generator=g, dtype=DT)
    else:
        field = exact_field(StochasticInterpolant("linear", gamma="brownian"), gmm_source_2d, gmm_target_2d)
        x = gmm_source_2d.sample(n, generator=g)
    with torch.no_grad():
        x1 = _heun(field, x, 100)
    _assert_moments(x1, gmm_target_2d.mean, gmm_target_2d.cov)
    # the moment check can fail: the source moments are far from the target's
    assert float((x.mean(0) - gmm_target_2d.mean).abs().max()) > 0.3


def test_rectified_flow_1d_gaussian_map_is_exact_per_sample() -> None:
    # N(0, 1) → N(m, s²) under the independent coupling: x_t ~ N(tm, σ_t²), σ_t² = (1 − t)² + t²s², and the 1-D
    # flow is the monotone map x_t = tm + σ_t·x0 (so x1 = m + s·x0), with velocity m + σ̇_t·x0.
    m, s = 1.5, 0.5
    target = GaussianMixture(torch.tensor([[m]], dtype=DT), torch.tensor([s**2], dtype=DT))
    field = exact_field(RectifiedFlow(), "gaussian", target, "velocity")
    x0 = torch.linspace(-3, 3, 41, dtype=DT)[:, None]
    with torch.no_grad():
        x1 = _heun(field, x0, 200)
        t = torch.tensor(0.37, dtype=DT)
        sig = torch.sqrt((1 - t) ** 2 + t**2 * s**2)
        dsig = (-(1 - t) + t * s**2) / sig
        torch.testing.assert_close(field(t * m + sig * x0, t), m + dsig * x0, rtol=0, atol=1e-12)
    assert float((x1 - (m + s * x0)).abs().max()) < 1e-4


@pytest.mark.parametrize(("kind", "t", "kw"), [("vp", 0.5, {}), ("ve", 0.99, {"sigma_max": 80.0}),
                                               ("ve", 0.7, {"sigma_max": 2.0})])
def test_bridge_denoiser_is_the_gmm_posterior_mean(kind: str, t: float, kw: dict, gmm_target_2d) -> None:
    interp = DiffusionBridge(kind, **kw)
    scale = 0.5
    cond_target = ConditionalGMM(gmm_target_2d, scale=scale)
    den = exact_field(interp, None, cond_target, "x1")
    g = torch.Generator().manual_seed(5)
    x0 = torch.tensor([0.8, -0.6], dtype=DT)
    c = interp.schedule(torch.tensor([t], dtype=DT))
    a, b, cc = float(c.alpha), float(c.beta), float(c.gamma)
    x1_true = cond_target.sample(x0.expand(4, 2), generator=g)
    x_t = a * x0 + b * x1_true + cc * torch.randn(4, 2, generator=g, dtype=DT)
    out = den(x_t, torch.tensor(t, dtype=DT), x0.expand(4, 2))
    prior = GaussianMixture(gmm_target_2d.means + scale * x0, gmm_target_2d.covs, gmm_target_2d.weights)
    big_m = 40000
    samples = cond_target.sample(x0.expand(big_m, 2), generator=g)
    for i in range(4):
        # exact: y = x_t − a x0 = b x1 + c n is a linear Gaussian measurement of x1
        post = gmm_posterior(prior, b * torch.eye(2, dtype=DT), x_t[i] - a * x0, cc)
        torch.testing.assert_close(out[i], post.mean, rtol=1e-9, atol=1e-10)
        # Monte Carlo: self-normalised importance weights over prior draws
        logw = -((x_t[i] - a * x0 - b * samples) ** 2).sum(1) / (2 * cc**2)
        w = torch.softmax(logw, 0)
        mc = (w[:, None] * samples).sum(0)
        ess = float(1 / (w**2).sum())
        sd = torch.sqrt(torch.diagonal(post.cov))
        assert ess > 200, ess
        assert bool(((mc - out[i]).abs() < 5 * sd / math.sqrt(ess) + 1e-3).all()), (mc, out[i], ess)


def test_bridge_denoiser_tower_property(gmm_target_2d) -> None:
    # E_{x_t | x0}[E[x1 | x_t, x0]] = E[x1 | x0] = Σ w_k μ_k + scale·x0.
    interp = DiffusionBridge("vp")
    cond_target = ConditionalGMM(gmm_target_2d, scale=0.5)
    den = exact_field(interp, None, cond_target, "x1")
    g = torch.Generator().manual_seed(8)
    n = 4000
    x0 = torch.tensor([0.8, -0.6], dtype=DT).expand(n, 2)
    ps = interp.sample(x0, cond_target.sample(x0, generator=g), 0.4, generator=g)
    with torch.no_grad():
        d = den(ps.x_t, ps.t, x0)
    expected = gmm_target_2d.mean + 0.5 * x0[0]
    se = d.std(0) / math.sqrt(n)
    assert bool(((d.mean(0) - expected).abs() < 4.5 * se + 1e-3).all()), (d.mean(0), expected)


def test_exact_fields_at_point_mass_ends(gmm_target_2d) -> None:
    # Bridge start t = 0: x_t = x0 carries no information, so the denoiser is E[x1 | x0] (the DBIM boot step).
    interp = DiffusionBridge("vp")
    cond_target = ConditionalGMM(gmm_target_2d, scale=0.5)
    x0 = torch.tensor([[0.8, -0.6], [-1.0, 2.0]], dtype=DT)
    den = exact_field(interp, None, cond_target, "x1")(x0, torch.tensor(0.0, dtype=DT), x0)
    torch.testing.assert_close(den, gmm_target_2d.mean + 0.5 * x0, rtol=1e-12, atol=1e-12)
    # Point-mass target at t = 1 of rectified flow: x̂1 = the point, velocity finite.
    point = GaussianMixture(torch.tensor([[1.0, 2.0]], dtype=DT), torch.zeros(1, 2, 2, dtype=DT))
    one = torch.tensor(1.0, dtype=DT)
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=DT)
    torch.testing.assert_close(exact_field(RectifiedFlow(), "gaussian", point, "x1")(x, one), x)
    vel = exact_field(RectifiedFlow(), "gaussian", point, "velocity")(x, one)
    assert bool(torch.isfinite(vel).all())


# ------------------------------------------------------------------------------------------------------ errors
def test_exact_field_and_posterior_errors(gmm_source_2d, gmm_target_2d) -> None:
    with pytest.raises(ValueError, match="Gaussian source"):
        exact_field(RectifiedFlow(), gmm_source_2d, gmm_target_2d)
    with pytest.raises(ValueError, match="source=None"):
        exact_field(DiffusionBridge("vp"), gmm_source_2d, gmm_target_2d)
    with pytest.raises(ValueError, match="GaussianMixture"):
        exact_field(StochasticInterpolant("linear", gamma="brownian"), "gaussian", gmm_target_2d)
    interp = RectifiedFlow()
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        posterior_means(interp, torch.zeros(2, 2, 1, dtype=DT), 0.5, source="gaussian", target=gmm_target_2d)
    with pytest.raises(ValueError, match="dimension"):
        posterior_means(interp, torch.zeros(2, 3, dtype=DT), 0.5, source="gaussian", target=gmm_target_2d)
    with pytest.raises(ValueError, match="ConditionalGMM target needs"):
        posterior_means(StochasticInterpolant("linear", gamma="brownian"), torch.zeros(2, 2, dtype=DT), 0.5,
                        source=gmm_source_2d, target=ConditionalGMM(gmm_target_2d))
    bridge_field = exact_field(DiffusionBridge("vp"), None, gmm_target_2d, "x1")
    with pytest.raises(ValueError, match="x0"):
        bridge_field(torch.zeros(2, 2, dtype=DT), 0.5)
    with pytest.raises(ValueError, match="x0"):
        bridge_field.predict(torch.zeros(2, 2, dtype=DT), 0.5, "velocity")


def test_field_contract_errors() -> None:
    rf = RectifiedFlow()
    net = lambda x, t: 2 * x
    with pytest.raises(TypeError, match="Interpolant"):
        Field(net, "rf", "velocity")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown kind"):
        Field(net, rf, "eps")
    with pytest.raises(ValueError, match="not defined"):
        Field(net, RectifiedFlow(source="data"), "score")
    with pytest.raises(ValueError, match="needs eps"):
        Field(net, rf, "drift_fwd")
    bad = Field(lambda x, t: x[:, :1], rf, "velocity")
    with pytest.raises(ValueError, match="returned shape"):
        bad(torch.zeros(3, 2), 0.5)
    # float32 data: the field gets (B,) float32 times and conversions keep float32
    f = Field(lambda x, t: x * t[:, None], rf, "x1")
    out = f.predict(torch.ones(3, 2), 0.5, "velocity")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, rf.convert(0.5 * torch.ones(3, 2), "x1", "velocity", torch.ones(3, 2), 0.5))
