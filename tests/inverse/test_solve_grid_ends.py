"""solve() with only a sampler name: the grid's ends move inside where the prior's denoiser or the sampler's
conversion is singular (VP: ε → x̂1 at t = 0, x1 → velocity at t = 1 for samplers that evaluate the last time)."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import exact_field
from genlab.interpolants import VPDiffusion
from genlab.inverse import DiffusionPrior, solve
from genlab.inverse.testing import gaussian_problem


@pytest.mark.parametrize("sampler", ["heun", "rk4", "sde_heun", "edm", "euler", "ddim"])
def test_score_mode_guidance_runs_with_every_compatible_sampler_by_default(sampler: str) -> None:
    gp = gaussian_problem(4, 2, 0, sigma=0.5)
    prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
    res = solve(gp.problem, prior, "dps", sampler=sampler, steps=6, n_samples=4, seed=0, faithful=False)
    assert bool(torch.isfinite(res.samples).all())
    evaluates_end = sampler in ("heun", "rk4", "sde_heun", "edm")
    assert res.config["t_end"] == (pytest.approx(1 - 1e-3) if evaluates_end else 1.0)


def test_noise_prior_starts_inside() -> None:
    gp = gaussian_problem(4, 2, 0, sigma=0.5)
    eps_prior = DiffusionPrior(exact_field(VPDiffusion("cosine"), "gaussian", gp.prior, kind="noise"))  # β(0) = 0
    res = solve(gp.problem, eps_prior, "pigdm", steps=6, n_samples=4, seed=0)
    assert res.config["t_start"] == pytest.approx(1e-3) and bool(torch.isfinite(res.samples).all())
    explicit = solve(gp.problem, eps_prior, "pigdm", steps=6, n_samples=4, seed=0, t_start=0.01)
    assert explicit.config["t_start"] == pytest.approx(0.01)  # an explicit end wins
