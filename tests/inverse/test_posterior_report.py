"""Posterior metrics with their uncertainty: exact samples are within the floor's noise, the prior is not."""

from __future__ import annotations

import pytest
import torch

from genlab.inverse.testing import mcgdiff_problem, posterior_floor, posterior_report


def test_exact_posterior_samples_are_within_noise_and_the_prior_is_not() -> None:
    gp = mcgdiff_problem(2, 1, 0)
    n = 400
    floor = posterior_floor(gp.posterior, n, draws=5)
    assert floor.n == 5 and floor.low < floor.mean < floor.high
    exact = [gp.posterior.sample(n, generator=torch.Generator().manual_seed(50 + s)) for s in range(3)]
    prior = [gp.prior.sample(n, generator=torch.Generator().manual_seed(60 + s)) for s in range(3)]
    good = posterior_report(exact, gp.posterior, floor=floor)
    bad = posterior_report(prior, gp.posterior, floor=floor)
    assert good.verdict.within_noise, good.verdict.text
    assert bad.verdict.text.startswith("worse than exact posterior"), bad.verdict.text
    assert bad.to_dict()["floor"]["n"] == 5


def test_posterior_report_bad_input() -> None:
    gp = mcgdiff_problem(2, 1, 0)
    with pytest.raises(ValueError, match="sample_sets is empty"):
        posterior_report([], gp.posterior)
    with pytest.raises(ValueError, match="draws"):
        posterior_floor(gp.posterior, 10, draws=0)
