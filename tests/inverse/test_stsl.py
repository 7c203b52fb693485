"""STSL mechanics: Hutchinson estimators vs the exact Hessian trace, gradients of the trace term, the η = 0
reduction to latent DPS, cost accounting, the encoded-measurement initialisation and the linear-autoencoder rig
(reference/inverse.md §1.6, §5.5)."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

from genlab.analytic import GaussianMixture, gmm_posterior
from genlab.interpolants.presets import RectifiedFlow, VPDiffusion
from genlab.inverse import (
    STSL,
    DenseOperator,
    DiffusionPrior,
    Inpainting,
    InverseProblem,
    LatentPrior,
    solve,
    testing,
)
from genlab.inverse.methods import CountedModel, SolveContext, draw_probe, hutchinson_trace
from genlab.models import AutoEncoder, LinearAutoEncoder
from genlab.models.field import Field
from genlab.samplers.steps import DDPMStep as DDPM


def _score_fn(prior: DiffusionPrior, t: float):
    return lambda v: prior.field.predict(v, t, "score")


def _exact_trace(gmm: GaussianMixture, prior: DiffusionPrior, z: torch.Tensor, t: float) -> float:
    """Tr ∇²log p_t(z) from autograd's Hessian of the noised mixture Σ w N(aμ, (a² + s²)I)."""
    lvl = prior.coeffs(t, z)
    a, s = float(lvl.beta[0]), float(lvl.alpha[0])
    noised = GaussianMixture(a * gmm.means, a**2 + s**2, gmm.weights)
    h = torch.autograd.functional.hessian(lambda v: noised.log_prob(v[None]).sum(), z[0])
    return float(torch.trace(h))


@pytest.mark.parametrize("t", [0.3, 0.6, 0.9])
def test_hutchinson_jvp_is_unbiased(t: float) -> None:
    """10⁴ Gaussian probes: the exact ('jvp') estimator is within 3 standard errors of Tr ∇²log p_t."""
    gmm = testing.mcgdiff_problem(4, 1, 0).prior
    prior = DiffusionPrior.from_gmm(gmm, VPDiffusion())
    z0 = 5 * torch.randn(1, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = _exact_trace(gmm, prior, z0, t)
    n = 10_000
    z = z0.expand(n, 4).clone().requires_grad_(True)
    probes = draw_probe(z, "gaussian", generator=torch.Generator().manual_seed(2))
    est = hutchinson_trace(_score_fn(prior, t), z, probes, estimator="jvp").detach()
    se = float(est.std()) / n**0.5
    assert abs(float(est.mean()) - exact) < 3 * se, (float(est.mean()), exact, se)
    rade = draw_probe(z, "rademacher", generator=torch.Generator().manual_seed(3))
    assert bool((rade.abs() == 1).all())


def test_fd_delta_matches_jvp_probe_by_probe() -> None:
    gmm = testing.mcgdiff_problem(4, 1, 0).prior
    prior = DiffusionPrior.from_gmm(gmm, RectifiedFlow())
    for t in (0.3, 0.6, 0.9):
        z = 5 * torch.randn(64, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        probes = draw_probe(z, generator=torch.Generator().manual_seed(2))
        exact = hutchinson_trace(_score_fn(prior, t), z.clone().requires_grad_(True), probes, estimator="jvp")
        exact = exact.detach()
        fd = hutchinson_trace(_score_fn(prior, t), z, probes, estimator="fd_delta", delta=1e-6)
        assert float((fd - exact).abs().max()) < 1e-3 * float(exact.abs().mean())


@pytest.mark.parametrize("estimator", ["fd_unit", "fd_delta", "jvp"])
def test_trace_term_gradient_matches_central_differences(estimator: str) -> None:
    gmm = testing.mcgdiff_problem(4, 1, 1).prior
    prior = DiffusionPrior.from_gmm(gmm, VPDiffusion())
    t = 0.7
    z = 3 * torch.randn(2, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    probe = draw_probe(z, generator=torch.Generator().manual_seed(5))

    def f(v: torch.Tensor) -> torch.Tensor:
        return hutchinson_trace(_score_fn(prior, t), v, probe, estimator=estimator, delta=1e-2).sum()

    zz = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(zz), zz)
    h = 1e-5
    fd = torch.zeros_like(z)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            e = torch.zeros_like(z)
            e[i, j] = h
            zp, zm = (z + e).requires_grad_(True), (z - e).requires_grad_(True)
            fd[i, j] = (f(zp) - f(zm)).detach() / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-6)


def _rig(seed: int, d: int = 8, k: int = 4) -> tuple[InverseProblem, LatentPrior, GaussianMixture, GaussianMixture]:
    """Linear autoencoder D(z) = Uz, GMM in z, A_eff = AU: the latent posterior is exact (reference §5.5)."""
    ae = LinearAutoEncoder(d, k, generator=torch.Generator().manual_seed(0))
    gz = testing.mcgdiff_problem(k, 1, seed).prior
    gen = torch.Generator().manual_seed(seed + 10)
    a = 3 * torch.randn(2, d, generator=gen, dtype=torch.float64) / d**0.5
    z_star = gz.sample(1, generator=gen)[0]
    sigma = 0.5
    y = a @ (ae.decoder_matrix @ z_star) + sigma * torch.randn(2, generator=gen, dtype=torch.float64)
    post = gmm_posterior(gz, a @ ae.decoder_matrix, y, sigma)
    prior = LatentPrior(DiffusionPrior.from_gmm(gz, VPDiffusion()).field, ae)
    return InverseProblem(DenseOperator(a), y[None], sigma), prior, gz, post


@pytest.mark.parametrize("data_loss", ["norm", "squared"])
def test_stsl_without_trace_is_latent_dps(data_loss: str) -> None:
    problem, prior, _, _ = _rig(0)
    lam = 0.1 if data_loss == "norm" else 0.01
    a = solve(problem, prior, "stsl", steps=30, n_samples=50, seed=3, eta_tr=0.0, K=1, lam=lam,
              data_loss=data_loss, init="noise")
    dps_kw = {"zeta": lam / 2, "normalize": True} if data_loss == "norm" else {"zeta": lam, "normalize": False}
    b = solve(problem, prior, "dps", sampler="ddpm", steps=30, n_samples=50, seed=3, apply="before", **dps_kw)
    torch.testing.assert_close(a.latents, b.latents, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.samples, b.samples, rtol=1e-10, atol=1e-10)
    assert (a.nfe, a.n_vjp) == (b.nfe, b.n_vjp) == (30, 30)


@pytest.mark.parametrize(("estimator", "probes", "nfe_per_inner", "jvp_per_inner"),
                         [("fd_unit", 1, 2, 0), ("fd_delta", 2, 3, 0), ("jvp", 2, 1, 2)])
def test_stsl_cost_accounting(estimator: str, probes: int, nfe_per_inner: int, jvp_per_inner: int) -> None:
    problem, prior, _, _ = _rig(0)
    steps, k = 4, 3
    res = solve(problem, prior, "stsl", steps=steps, n_samples=5, seed=0, K=k, trace_estimator=estimator,
                n_probes=probes)
    assert res.nfe == steps * k * nfe_per_inner
    # every evaluation in the loss is reached by the final backward pass; each exact probe adds its own VJP
    assert res.n_vjp == steps * k * (1 + probes)
    assert res.n_jvp == steps * k * jvp_per_inner
    assert len(res.diagnostics["trace"]) == steps


def test_stsl_refresh_order_transitions_from_the_moved_state() -> None:
    """order='refresh' re-evaluates ẑ1 at the moved state (one more NFE per step, no extra VJP) and so differs from
    the default (TMPD) order on the same seed; an unknown order is refused."""
    problem, prior, _, _ = _rig(0)
    kw = {"steps": 4, "n_samples": 5, "seed": 0, "K": 1, "eta_tr": 0.0}
    tmpd = solve(problem, prior, "stsl", **kw)
    refresh = solve(problem, prior, "stsl", order="refresh", **kw)
    assert refresh.nfe == tmpd.nfe + 4 and refresh.n_vjp == tmpd.n_vjp
    assert not torch.allclose(refresh.samples, tmpd.samples)
    with pytest.raises(ValueError, match="order"):
        solve(problem, prior, "stsl", order="after", **kw)


def test_init_from_the_encoded_measurement() -> None:
    """init='adjoint': z(t0) = a(t0)·𝓔(Aᵀy) + s(t0)·ξ with ξ the prior's own initial noise."""
    problem, prior, _, _ = _rig(1)
    n = 6
    prob = problem.expand(n)
    grid = torch.linspace(0.5, 1.0, 6, dtype=torch.float64)

    def ctx(gen: torch.Generator) -> SolveContext:
        return SolveContext(problem=prob, prior=prior, model=CountedModel(prior), transition=DDPM(), grid=grid,
                            x_shape=prob.x_shape, state_shape=(4,), n_samples=n, generator=gen)

    z = STSL(init="adjoint").init_state(ctx(torch.Generator().manual_seed(9)))
    noise = STSL(init="noise").init_state(ctx(torch.Generator().manual_seed(9)))
    lvl = prior.coeffs(0.5, z)
    expected = lvl.beta[:, None] * prior.encode(problem.op.At(prob.y)) + noise
    torch.testing.assert_close(z, expected)
    res = solve(problem, prior, "stsl", steps=5, n_samples=n, seed=9, t_start=0.5, K=1)
    assert res.config["t_start"] == 0.5


@pytest.mark.slow
def test_linear_autoencoder_rig_bands() -> None:
    """STSL (100 NFE) and latent DPS (100 NFE) on the exact latent rig: median SW ≤ SW(prior)/10 over 3 seeds."""
    sws: dict[str, list[float]] = {"stsl": [], "dps": [], "prior": []}
    for seed in range(3):
        problem, prior, gz, post = _rig(seed)
        ref = post.sample(500, generator=torch.Generator().manual_seed(3))
        sws["prior"].append(testing.sliced_w1(gz.sample(500, generator=torch.Generator().manual_seed(4)), ref))
        stsl = solve(problem, prior, "stsl", steps=10, n_samples=500, seed=seed, K=5)
        dps = solve(problem, prior, "dps", steps=100, n_samples=500, seed=seed, zeta=0.1)
        assert stsl.nfe == dps.nfe == 100
        sws["stsl"].append(testing.sliced_w1(stsl.latents, ref, generator=torch.Generator().manual_seed(0)))
        sws["dps"].append(testing.sliced_w1(dps.latents, ref, generator=torch.Generator().manual_seed(0)))
    med = {k: statistics.median(v) for k, v in sws.items()}
    assert med["stsl"] <= med["prior"] / 10, med
    assert med["dps"] <= med["prior"] / 10, med


class _TinyLatentNet(nn.Module):
    """A small convolutional x1-predictor on (B, 2, 4, 4) latents (untrained; for shapes and costs only)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t.to(z.dtype).view(-1, 1, 1, 1).expand(z.shape[0], 1, *z.shape[2:])
        return torch.tanh(self.conv(torch.cat([z, tt], 1)))


def test_stsl_runs_on_images_with_a_convolutional_autoencoder() -> None:
    torch.manual_seed(0)
    ae = AutoEncoder(1, latent_channels=2, channels=(8,))
    interp = VPDiffusion()
    prior = LatentPrior(Field(_TinyLatentNet(), interp, "x1"), ae)
    mask = torch.ones(1, 8, 8)
    mask[:, 2:6, 2:6] = 0
    x = torch.rand(1, 1, 8, 8) * 2 - 1
    problem = InverseProblem.simulate(Inpainting(mask), x, 0.05, generator=torch.Generator().manual_seed(0))
    res = solve(problem, prior, "stsl", steps=3, n_samples=2, seed=0, K=2)
    assert res.samples.shape == (2, 1, 8, 8) and res.latents.shape == (2, 2, 4, 4)
    assert res.nfe == 3 * 2 * 2 and bool(torch.isfinite(res.samples).all())
    assert res.config["options"]["init"] == "adjoint"
