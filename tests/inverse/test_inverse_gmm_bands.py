"""GMM posterior bands (MCGdiff protocol, reference/inverse.md §5.1, §5.4–5.5) against the exact posterior.

d = 2, d_y = 2, seeds 0–4: ΠGDM median SW < 0.15; DPS (ζ' = 0.5) < 0.5; every method ≤ SW(prior)/10. The noise
floor (two exact posterior sample sets of the same size) is checked to sit below every band, so a band is never
looser than what the sample size can resolve.
"""

from __future__ import annotations

import statistics
from functools import cache

import pytest
import torch

from genlab.interpolants.presets import RectifiedFlow, VPDiffusion
from genlab.inverse import DiffusionPrior, LatentPrior, solve, testing
from genlab.models import LinearAutoEncoder

N = 400
SEEDS = range(5)


@cache
def _cell(seed: int) -> tuple[testing.GMMInverseProblem, torch.Tensor, float, float]:
    gp = testing.mcgdiff_problem(2, 2, seed)
    ref = gp.posterior.sample(N, generator=torch.Generator().manual_seed(100 + seed))
    prior_sw = testing.sliced_w1(gp.prior.sample(N, generator=torch.Generator().manual_seed(7)), ref,
                                 generator=torch.Generator().manual_seed(0))
    return gp, ref, prior_sw, testing.noise_floor(gp.posterior, N, seed=seed)


def _median_sw(method: str, interp=None, implementation: str = "isotropic", latent: bool = False,
               seeds: range = SEEDS, **kw) -> tuple[float, float, float]:
    sws, priors, floors = [], [], []
    for seed in seeds:
        gp, ref, prior_sw, floor = _cell(seed)
        prior = DiffusionPrior.from_gmm(gp.prior, interp or VPDiffusion(), implementation=implementation)
        if latent:  # pixel-space STSL: the exact linear rig with D = E = identity
            prior = LatentPrior(prior.field, LinearAutoEncoder.from_matrix(torch.eye(2, dtype=torch.float64)))
        res = solve(gp.problem, prior, method, n_samples=N, seed=seed, **kw)
        sws.append(testing.sliced_w1(res.samples, ref, generator=torch.Generator().manual_seed(0)))
        priors.append(prior_sw)
        floors.append(floor)
    return statistics.median(sws), statistics.median(priors), statistics.median(floors)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kwargs", "band"),
    [
        ("pigdm", {"steps": 100, "faithful": False}, 0.15),
        ("dps", {"steps": 100, "zeta": 0.5}, 0.5),
        ("dds", {"steps": 100}, None),
        ("dreamguider", {"steps": 100}, None),
        ("stsl", {"steps": 50, "K": 1, "lam": 0.3, "latent": True}, None),
    ],
)
def test_gmm_d2_bands(name: str, kwargs: dict, band: float | None) -> None:
    sw, prior_sw, floor = _median_sw(name, **kwargs)
    assert floor < 0.1, floor
    assert sw <= prior_sw / 10, (sw, prior_sw)
    if band is not None:
        assert sw < band, sw


@pytest.mark.slow
def test_gmm_d2_pigdm_on_rectified_flow_with_the_analytic_field() -> None:
    """Same band with genlab.analytic.exact_field on a rectified-flow prior (any Gaussian-source path works)."""
    sw, _, _ = _median_sw("pigdm", interp=RectifiedFlow(), implementation="analytic", seeds=range(3),
                          sampler="ddpm", steps=100, faithful=False)
    assert sw < 0.15, sw
