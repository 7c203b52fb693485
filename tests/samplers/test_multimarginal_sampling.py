"""Registered samplers on a restricted multimarginal path (MultimarginalField): they transport rho_1 onto rho_2."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interpolants"))
from test_multimarginal import DT, draw_marginals, exact_g, gaussian_map

import genlab.samplers as S
from genlab.interpolants.multimarginal import EdgePath, GammaPath, Multimarginal, PolylinePath
from genlab.models import MultimarginalField


@pytest.mark.parametrize("path", [EdgePath(1, 2, 2), GammaPath(1, 2, 2),
                                  PolylinePath([1, "barycentre", 2], 2, easing="cosine")])
@pytest.mark.parametrize("sampler", ["heun", "rk4"])
def test_ode_samplers_transport_between_data_marginals(path, sampler):
    mm = Multimarginal(2)
    gen = torch.Generator().manual_seed(0)
    x1 = draw_marginals(500, 2, gen)[:, 1]
    field = MultimarginalField(lambda x, a: exact_g(x, a).flatten(1), mm.restrict(path))
    res = S.get_sampler(sampler).sample(field, x1, S.make_grid("uniform", 60, field.interpolant))
    ref = gaussian_map(x1, 1, 2)  # exact per-sample map between the two Gaussian marginals
    err = float((res.x - ref).abs().max())
    assert err < 1e-2, err
    assert res.nfe == S.get_sampler(sampler).expected_nfe(60)


def test_semilinear_sampler_refused_off_the_face():
    mm = Multimarginal(2)
    field = MultimarginalField(lambda x, a: exact_g(x, a).flatten(1),
                               mm.restrict(PolylinePath([1, "barycentre", 2], 2)))
    x = torch.zeros(4, 3, dtype=DT)
    with pytest.raises(ValueError):
        S.get_sampler("dpmpp_2m").sample(field, x, S.make_grid("uniform", 4, field.interpolant))
