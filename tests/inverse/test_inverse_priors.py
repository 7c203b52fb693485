"""Priors: the isotropic GMM denoiser against genlab.analytic, Tweedie's score identity, latent priors."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants.presets import RectifiedFlow, StochasticInterpolant, VEDiffusion, VPDiffusion
from genlab.inverse import DiffusionPrior, GMMDenoiser, LatentPrior
from genlab.models import LinearAutoEncoder
from genlab.models.field import Field

PATHS = [VPDiffusion(), RectifiedFlow(), VEDiffusion(sigma_min=0.01, sigma_max=30.0)]


def _gmm(gen: torch.Generator, d: int = 3) -> GaussianMixture:
    means = 3 * torch.randn(4, d, generator=gen, dtype=torch.float64)
    tau2 = torch.tensor([0.5, 1.0, 1.5, 0.2], dtype=torch.float64)
    return GaussianMixture(means, tau2, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))


@pytest.mark.parametrize("interp", PATHS, ids=lambda p: p.name)
def test_isotropic_denoiser_equals_exact_field(interp, gen: torch.Generator) -> None:
    gmm = _gmm(gen)
    fast = DiffusionPrior.from_gmm(gmm, interp).field
    exact = exact_field(interp, "gaussian", gmm, kind="x1")
    x = 4 * torch.randn(64, 3, generator=gen, dtype=torch.float64)
    for t in (0.05, 0.4, 0.8, 0.97):
        torch.testing.assert_close(fast(x, t), exact(x, t), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("interp", PATHS, ids=lambda p: p.name)
def test_tweedie_score_matches_noised_mixture(interp, gen: torch.Generator) -> None:
    """(a x̂1 − x)/s² must be the score of p_t = Σ w N(aμ, (a²τ² + s²) I) (reference/inverse.md §0, §5.2)."""
    gmm = _gmm(gen)
    prior = DiffusionPrior.from_gmm(gmm, interp)
    x = 4 * torch.randn(32, 3, generator=gen, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        lvl = prior.coeffs(t, x)
        a, s = lvl.beta[0], lvl.alpha[0]
        x1 = prior.field(x, t)
        noised = GaussianMixture(a * gmm.means, a**2 * torch.diagonal(gmm.covs, dim1=1, dim2=2)[:, 0] + s**2,
                                 gmm.weights)
        torch.testing.assert_close((a * x1 - x) / s**2, noised.score(x), rtol=1e-8, atol=1e-8)
        torch.testing.assert_close(prior.field.predict(x, t, "score"), noised.score(x), rtol=1e-8, atol=1e-8)


def test_noise_levels_follow_the_path() -> None:
    x = torch.zeros(3, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    gmm = GaussianMixture(torch.zeros(1, 2), 1.0)
    vp = DiffusionPrior.from_gmm(gmm, VPDiffusion()).coeffs(t, x)
    torch.testing.assert_close(vp.beta**2 + vp.alpha**2, torch.ones(3, dtype=torch.float64))
    rf = DiffusionPrior.from_gmm(gmm, RectifiedFlow()).coeffs(t, x)
    torch.testing.assert_close(rf.beta, t)
    torch.testing.assert_close(rf.alpha, 1 - t)


def test_prior_rejects_bad_fields() -> None:
    with pytest.raises(TypeError, match="Field"):
        DiffusionPrior(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    two_sided = StochasticInterpolant("linear", gamma="brownian")
    with pytest.raises(ValueError, match="Gaussian source"):
        DiffusionPrior(Field(torch.nn.Identity(), two_sided, "velocity"))
    aniso = GaussianMixture(torch.zeros(1, 2), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="isotropic"):
        GMMDenoiser(aniso, VPDiffusion())


def test_latent_prior_encode_decode_and_shape(gen: torch.Generator) -> None:
    ae = LinearAutoEncoder(6, 3, generator=gen)
    interp = VPDiffusion()
    field = Field(GMMDenoiser(GaussianMixture(torch.zeros(1, 3), 1.0), interp), interp, "x1")
    prior = LatentPrior(field, ae, scale=2.0, shift=0.5)
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    z = prior.encode(x)
    u = ae.decoder_matrix
    torch.testing.assert_close(z, (x @ u - 0.5) / 2.0)
    torch.testing.assert_close(prior.decode(z), x @ u @ u.T)
    assert prior.state_shape((6,)) == (3,) and prior.is_latent
    with pytest.raises(TypeError, match="encode"):
        LatentPrior(field, object())
    with pytest.raises(ValueError, match="scale"):
        LatentPrior(field, ae, scale=0.0)
