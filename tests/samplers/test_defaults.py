"""Defaults that just work (issue 11, part A): ``genlab.sample(field, sampler=X, steps=N, n=..., shape=...)`` with no
other argument runs every registered sampler on every exact-field path it supports (VP, rectified flow, two-sided
stochastic interpolant, DDBM bridge) or refuses it with a clear ``ValueError`` before any model call; aliases resolve
to the recommended variant; ``available_samplers(field)`` / ``sampler_support(field)`` agree with what runs.

The sampler list is read from the registry at collection time, so samplers registered later are checked too.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import genlab
from genlab.analytic import ConditionalGMM, GaussianMixture, exact_field
from genlab.interpolants import DiffusionBridge, RectifiedFlow, StochasticInterpolant, VPDiffusion
from genlab.models.field import Field
from genlab.samplers import SAMPLERS, available_samplers, get_sampler, grids, sampler_support
from genlab.samplers.registry import ALIASES

F64 = torch.float64
STEPS, N = 4, 5
GMM = GaussianMixture(torch.tensor([[1.5, 0.5], [-1.0, -1.0]], dtype=F64), torch.tensor([0.3, 0.5], dtype=F64) ** 2,
                      torch.tensor([0.4, 0.6], dtype=F64))
SOURCE = GaussianMixture(torch.tensor([[0.0, 0.5]], dtype=F64), 0.8)


class Counted(nn.Module):
    """Counts the calls of the exact network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        self.calls += 1
        return self.net(x_t, t) if cond is None else self.net(x_t, t, cond)


def _field(path: str) -> Field:
    if path == "vp":
        base = exact_field(VPDiffusion(), "gaussian", GMM, "noise")
    elif path == "rf":
        base = exact_field(RectifiedFlow(), "gaussian", GMM, "velocity")
    elif path == "si_two_sided":
        base = exact_field(StochasticInterpolant("linear", gamma="brownian"), SOURCE, GMM, "drift_fwd", eps=1.0)
    else:
        base = exact_field(DiffusionBridge("vp"), None, ConditionalGMM(GMM, scale=0.5), "x1")
    return Field(Counted(base.net), base.interpolant, base.kind, eps=base.eps)


PATHS = ("vp", "rf", "si_two_sided", "ddbm")
NAMES = sorted(SAMPLERS)
_SUPPORT: dict[str, dict] = {}


def _support(path: str) -> dict:
    """``sampler_support`` of a path's field (computed once per path; it does not depend on the call counter)."""
    if path not in _SUPPORT:
        _SUPPORT[path] = sampler_support(_field(path), steps=STEPS)
    return _SUPPORT[path]


def _one_line(field: Field, name: str, steps: int = STEPS, **kw):
    """The call a new user writes: only the sampler name, steps and what the path needs to start."""
    gen = torch.Generator().manual_seed(7)
    if field.interpolant.conditional_source:
        kw.setdefault("cond", torch.randn(N, 2, generator=gen, dtype=F64))
    if field.interpolant.gaussian_source or field.interpolant.conditional_source:
        return genlab.sample(field, sampler=name, steps=steps, n=N, shape=(2,), seed=0, dtype=F64, **kw)
    return genlab.sample(field, sampler=name, steps=steps, x_init=SOURCE.sample(N, generator=gen), seed=0, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_runs_with_defaults_or_refuses_clearly(name: str) -> None:
    ran, reasons = [], []
    for path in PATHS:
        field = _field(path)
        support = _support(path)[name]
        if support.ok:
            res = _one_line(field, name)
            assert res.x.shape == (N, 2) and bool(torch.isfinite(res.x).all()), (name, path)
            assert res.nfe == field.net.calls > 0, (name, path)
            ran.append(path)
        else:
            assert support.reason and len(support.reason) > 20, (name, path, support.reason)
            reasons.append(support.reason)
            with pytest.raises(ValueError):
                _one_line(field, name)
            assert field.net.calls == 0, (name, path)  # refused before any model call
    # a sampler that needs user data (a searched preset) may refuse every exact field, but must say what to pass
    assert ran or any("pass" in r for r in reasons), f"{name} runs on none of {PATHS} with its defaults: {reasons}"


#: The 11 (sampler, path) pairs that raised with the old default grid (uniform on [0, 1]; issue 11), plus the bridge
#: pairs that raised there too.
PREVIOUSLY_FAILING = [(n, "rf") for n in ("deis_tab", "deis_rhoab", "deis_logrho", "deis_rhork", "ipndm", "edm")] + [
    (n, "vp") for n in ("heun", "rk4", "sde_heun", "edm", "deis_rhork")] + [
    (n, "ddbm") for n in ("euler", "heun", "dpmpp_2m", "dpmpp_3m", "ddbm_heun")]


@pytest.mark.parametrize(("name", "path"), PREVIOUSLY_FAILING)
def test_pairs_that_used_to_raise_now_run(name: str, path: str) -> None:
    field = _field(path)
    res = _one_line(field, name, steps=10)
    assert bool(torch.isfinite(res.x).all())


def test_recommended_grids_are_the_paper_defaults() -> None:
    vp, rf = _field("vp"), _field("rf")
    # exponential integrators: uniform in log-SNR inside the ends where λ is finite (DPM-Solver / DEIS)
    torch.testing.assert_close(get_sampler("dpmpp_2m").recommended_grid(vp, 10), grids.log_snr(10, vp.interpolant))
    g = get_sampler("deis_tab").recommended_grid(rf, 10)
    assert float(g[0]) == pytest.approx(1e-3) and float(g[-1]) == pytest.approx(1 - 1e-3)
    # EDM: Karras ρ = 7
    torch.testing.assert_close(get_sampler("edm").recommended_grid(vp, 8), grids.karras(8, vp.interpolant))
    # Heun on VP evaluates at the last time, where ε → velocity is singular (α = 0): the grid ends 1e-3 before
    g = get_sampler("heun").recommended_grid(vp, 10)
    assert float(g[0]) == 0.0 and float(g[-1]) == pytest.approx(1 - 1e-3)
    # Euler evaluates only at step starts: it may end on the data end; on rectified flow Heun keeps [0, 1]
    assert float(get_sampler("euler").recommended_grid(vp, 10)[-1]) == 1.0
    torch.testing.assert_close(get_sampler("heun").recommended_grid(rf, 10), grids.uniform(10))
    # DBIM boots from the condition on its own grid
    ddbm = _field("ddbm")
    from genlab.samplers import dbim_grid, ddbm_grid

    torch.testing.assert_close(get_sampler("dbim").recommended_grid(ddbm, 6), dbim_grid(6, ddbm.interpolant))
    torch.testing.assert_close(get_sampler("ddbm_heun").recommended_grid(ddbm, 6), ddbm_grid(6, ddbm.interpolant))


def test_explicit_grid_and_grid_options_still_win() -> None:
    vp = _field("vp")
    res = genlab.sample(vp, sampler="dpmpp_2m", steps=6, grid="uniform", grid_options={"t_end": 0.99}, n=N,
                        shape=(2,), seed=0, dtype=F64)
    torch.testing.assert_close(res.grid, grids.uniform(6, t_end=0.99))
    res = genlab.sample(vp, sampler="dpmpp_2m", steps=6, grid_options={"t_end": 0.99}, n=N, shape=(2,), seed=0,
                        dtype=F64)
    torch.testing.assert_close(res.grid, grids.log_snr(6, vp.interpolant, t_end=0.99))
    default = genlab.sample(vp, sampler="heun", n=N, shape=(2,), seed=0, dtype=F64)  # steps=None: the default 10
    assert default.grid.numel() == 11


@pytest.mark.parametrize(("alias", "target"), [("deis", "deis_tab"), ("dpm++", "dpmpp_2m"), ("dpmpp", "dpmpp_2m"),
                                                ("dpm_solver", "dpmpp_2m"), ("DPM++", "dpmpp_2m")])
def test_aliases_resolve_to_the_recommended_variant(alias: str, target: str) -> None:
    assert type(get_sampler(alias)) is SAMPLERS[target]
    res = _one_line(_field("vp"), alias)
    assert bool(torch.isfinite(res.x).all())


def test_every_alias_points_to_a_registered_name_or_is_ignored() -> None:
    for alias, target in ALIASES.items():
        if target in SAMPLERS:
            assert type(get_sampler(alias)) is SAMPLERS[target]
        else:
            with pytest.raises(ValueError, match="unknown sampler"):
                get_sampler(alias)
    with pytest.raises(ValueError, match="aliases"):
        get_sampler("dpm+++")


def test_available_samplers_on_a_two_sided_drift_field_names_the_sde_samplers() -> None:
    field = _field("si_two_sided")
    names = available_samplers(field)
    assert {"euler_maruyama", "sde_heun"} <= set(names)
    assert names == [n for n, s in sampler_support(field).items() if s.ok]
    support = sampler_support(field)
    assert not support["dpmpp_2m"].ok and "semilinear" in support["dpmpp_2m"].reason
    assert available_samplers()[: len(NAMES)] == NAMES  # without a field: every registered name
