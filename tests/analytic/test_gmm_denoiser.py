"""The analytic GMM denoiser lives in genlab.analytic (moved from genlab.inverse.priors, which re-exports it)."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import GaussianMixture, GMMDenoiser, exact_field
from genlab.interpolants import RectifiedFlow, VEDiffusion, VPDiffusion

torch.set_num_threads(1)
DT = torch.float64


@pytest.mark.parametrize("interp", [VPDiffusion(), RectifiedFlow(), VEDiffusion(sigma_min=0.01, sigma_max=5.0)],
                         ids=["vp", "rf", "ve"])
def test_isotropic_denoiser_equals_the_exact_x1_field(interp) -> None:
    gen = torch.Generator().manual_seed(0)
    gmm = GaussianMixture(torch.randn(3, 4, generator=gen, dtype=DT) * 2, torch.tensor([0.3, 1.0, 2.0], dtype=DT),
                          torch.tensor([0.2, 0.5, 0.3], dtype=DT))
    x = torch.randn(16, 4, generator=gen, dtype=DT) * 2
    t = 0.05 + 0.9 * torch.rand(16, generator=gen, dtype=DT)
    ref = exact_field(interp, "gaussian", gmm, "x1")(x, t)
    torch.testing.assert_close(GMMDenoiser(gmm, interp)(x, t), ref, rtol=1e-10, atol=1e-10)


def test_inverse_priors_reexports_the_same_class() -> None:
    from genlab.inverse import priors

    assert priors.GMMDenoiser is GMMDenoiser
    with pytest.raises(ValueError, match="Gaussian-source"):
        GMMDenoiser(GaussianMixture(torch.zeros(1, 2, dtype=DT), 1.0), RectifiedFlow(source="data"))
