"""Every registered sampler through the same contract checks (DESIGN.md "The contracts" / "Tests").

The sampler list is read from ``genlab.samplers.SAMPLERS`` when the tests are collected, so samplers added later
are checked too. Each sampler runs on every path of :data:`PATHS` whose structure it accepts (``check`` does not
raise) and must accept at least one. Checks: shape and dtype kept (float32 and float64), NFE counted equals
``expected_nfe`` (when not ``None``) and the network's own call count, determinism under a generator,
batch-size invariance, a ``ValueError`` before any model call on incompatible paths, and a ``ValueError`` for a
model that returns NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from genlab.analytic import ConditionalGMM, GaussianMixture, exact_field
from genlab.interpolants import (
    DiffusionBridge,
    Interpolant,
    RectifiedFlow,
    StochasticInterpolant,
    VPDiffusion,
)
from genlab.models.field import Field
from genlab.samplers import DDIM, SAMPLERS, get_sampler, log_snr, uniform
from genlab.utils import randn_per_sample

F64 = torch.float64
STEPS = 4
N, K = 6, 3
GMM = GaussianMixture(torch.tensor([[1.5, 0.5], [-1.0, -1.0]], dtype=F64), torch.tensor([0.3, 0.5], dtype=F64) ** 2,
                      torch.tensor([0.4, 0.6], dtype=F64))
SOURCE = GaussianMixture(torch.tensor([[0.0, 0.5]], dtype=F64), 0.8)


@pytest.fixture(autouse=True)
def _single_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


class Counted(nn.Module):
    """Counts the calls of a network (to compare with the sampler's NFE); ``nan=True`` poisons its output."""

    def __init__(self, net: nn.Module, *, nan: bool = False) -> None:
        super().__init__()
        self.net, self.nan, self.calls = net, nan, 0

    def forward(self, x_t: Tensor, t: Tensor, cond=None) -> Tensor:
        self.calls += 1
        out = self.net(x_t, t) if cond is None else self.net(x_t, t, cond)
        return out * float("nan") if self.nan else out


@dataclass
class Path:
    """A path, its field, a grid and how to draw a starting state (per sample, so batches nest)."""

    name: str
    interpolant: Interpolant
    kind: str
    net: nn.Module
    grid: Callable[[int], Tensor]
    eps: float | None = None

    def field(self, *, nan: bool = False) -> Field:
        return Field(Counted(self.net, nan=nan), self.interpolant, self.kind, eps=self.eps)

    def start(self, n: int, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, Tensor | None]:
        gen = torch.Generator().manual_seed(seed)
        draw = randn_per_sample((n, 3, 2), generator=gen, dtype=F64)
        t0 = self.grid(STEPS)[:1]
        c = self.interpolant.schedule.coeffs(t0)
        if self.interpolant.gaussian_source:
            return (c.alpha * draw[:, 0]).to(dtype), None
        if self.interpolant.conditional_source:  # bridge: state at t0 from (x0, x1, z)
            x0 = draw[:, 0]
            x1 = GMM.means[0] + 0.5 * x0 + 0.4 * draw[:, 1]
            x = c.alpha * x0 + c.beta * x1 + c.gamma * draw[:, 2]
            return x.to(dtype), x0.to(dtype)
        return (SOURCE.means[0] + draw[:, 0]).to(dtype), None


def _vp() -> Path:
    vp = VPDiffusion()
    return Path("vp_noise", vp, "noise", exact_field(vp, "gaussian", GMM, "noise").net, lambda s: log_snr(s, vp))


def _rf() -> Path:
    rf = RectifiedFlow()
    return Path("rf_velocity", rf, "velocity", exact_field(rf, "gaussian", GMM, "velocity").net,
                lambda s: uniform(s, t_start=1e-3, t_end=1 - 1e-3))


def _bridge() -> Path:
    br = DiffusionBridge("vp")
    return Path("ddbm_vp_x1", br, "x1", exact_field(br, None, ConditionalGMM(GMM, scale=0.5), "x1").net,
                lambda s: uniform(s, t_start=1e-3, t_end=1 - 1e-3))


def _two_sided_noise_free() -> Path:
    rf = RectifiedFlow(source="data")
    return Path("rf_two_sided", rf, "velocity", exact_field(rf, SOURCE, GMM, "velocity").net,
                lambda s: uniform(s))


def _two_sided_si() -> Path:
    si = StochasticInterpolant("linear", gamma="brownian")
    return Path("si_two_sided_drift", si, "drift_fwd", exact_field(si, SOURCE, GMM, "drift_fwd", eps=1.0).net,
                lambda s: uniform(s, t_start=1e-3, t_end=1 - 1e-3), eps=1.0)


#: Paths every sampler is tried on.
PATHS = [_vp(), _rf(), _bridge()]
#: Paths used only to check that incompatible samplers refuse them cleanly.
NEGATIVE_PATHS = [_two_sided_noise_free(), _two_sided_si()]
NAMES = sorted(SAMPLERS)
#: Samplers that run only with an artefact made for the field (a searched preset): without one they must refuse
#: every path up front (checked here); running them is tested with their artefact in their own test file.
NEEDS_ARTEFACT = {"searched"}


def _run(sampler, path: Path, n: int, dtype: torch.dtype, seed: int | None = 0, *, nan: bool = False):
    field = path.field(nan=nan)
    x, cond = path.start(n, dtype)
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    res = sampler.sample(field, x, path.grid(STEPS), cond=cond, generator=gen)
    return res, field, x


def _compatible(sampler, path: Path) -> bool:
    try:
        sampler.check(path.field())
    except ValueError:
        return False
    return True


def _refuses(sampler, path: Path) -> None:
    """``check`` and ``sample`` both raise ValueError, and the network is never called."""
    field = path.field()
    with pytest.raises(ValueError):
        sampler.check(field)
    x, cond = path.start(N, F64)
    with pytest.raises(ValueError):
        sampler.sample(field, x, path.grid(STEPS), cond=cond, generator=torch.Generator().manual_seed(0))
    assert field.net.calls == 0


def test_registry_is_populated():
    for name in ("euler", "heun", "dopri5", "euler_maruyama", "sde_heun", "edm", "ddim", "iadb", "dbim", "dbim_ho",
                 "ddbm_heun"):
        assert name in SAMPLERS


@pytest.mark.parametrize("name", NAMES)
def test_conformance(name):
    sampler = get_sampler(name)
    ran_on = []
    for path in PATHS:
        if not _compatible(sampler, path):
            _refuses(sampler, path)
            continue
        ran_on.append(path.name)
        for dtype in (F64, torch.float32):
            res, field, x = _run(sampler, path, N, dtype)
            assert res.x.shape == x.shape and res.x.dtype == dtype and res.x.device == x.device, (name, path.name)
            assert torch.isfinite(res.x).all(), (name, path.name, dtype)
            assert res.nfe == field.net.calls > 0, (name, path.name)
            expected = sampler.expected_nfe(STEPS)
            if expected is not None:
                assert res.nfe == expected, (name, path.name, res.nfe, expected)
        # determinism under a generator
        a, _, _ = _run(sampler, path, N, F64, seed=0)
        b, _, _ = _run(sampler, path, N, F64, seed=0)
        assert torch.equal(a.x, b.x), (name, path.name)
        # batch-size invariance: the first K of N samples equal a run with K samples (same seed)
        small, _, _ = _run(sampler, path, K, F64, seed=0)
        adaptive = sampler.expected_nfe(STEPS) is None  # adaptive steps depend on the whole batch's error norm
        tol = 1e-3 if adaptive else 1e-9
        assert float((small.x - a.x[:K]).abs().max()) < tol, (name, path.name)
        # a NaN model output is reported, not propagated
        with pytest.raises(ValueError, match="non-finite"):
            _run(sampler, path, N, F64, nan=True)
    assert ran_on or name in NEEDS_ARTEFACT, f"sampler {name!r} runs on none of {[p.name for p in PATHS]}"
    for path in NEGATIVE_PATHS:
        if not _compatible(sampler, path):
            _refuses(sampler, path)


@pytest.mark.parametrize("name", NAMES)
def test_semilinear_samplers_refuse_two_sided_paths(name):
    sampler = get_sampler(name)
    if "semilinear" in sampler.requires or "bridge" in sampler.requires or "gaussian_source" in sampler.requires:
        for path in NEGATIVE_PATHS:
            _refuses(sampler, path)


def test_named_incompatibilities():
    vp, _, _ = PATHS
    for name in ("dbim", "dbim_ho", "ddbm_heun"):
        _refuses(get_sampler(name), vp)
    two_sided = NEGATIVE_PATHS[0]
    _refuses(DDIM(eta=0.5), two_sided)  # no Markovian step without noise
    res, _, _ = _run(DDIM(), two_sided, N, F64)  # η = 0 blends the two predicted ends
    assert torch.isfinite(res.x).all()
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("no_such_sampler")


# ---------------------------------------------------------------------------------------------- one noise stream
#: Every registered sampler with default options, plus the stochastic variants of the implicit samplers.
VARIANTS = [(name, {}) for name in NAMES] + [("ddim", {"eta": 1.0}), ("dbim", {"eta": 1.0})]


def _one_line(name: str, opts: dict, path: Path, n: int):
    """``genlab.sample`` for ``n`` samples (bridges: the known sources drawn per sample from a fixed seed)."""
    import genlab

    cond = None
    if path.interpolant.conditional_source:
        cond = randn_per_sample((n, 2), generator=torch.Generator().manual_seed(11), dtype=F64)
    return genlab.sample(path.field(), sampler=name, steps=10, grid=path.grid(10), n=n, shape=(2,), cond=cond,
                         seed=3, dtype=F64, **opts)


@pytest.mark.parametrize(("name", "opts"), VARIANTS, ids=[f"{n}{o}" if o else n for n, o in VARIANTS])
def test_genlab_sample_is_batch_size_invariant(name: str, opts: dict) -> None:
    """``genlab.sample(..., n=100, seed=3).x[:10]`` equals the ``n=10`` call for every sampler, stochastic ones
    included: the initial noise and every later draw come from one per-sample stream (genlab.utils.NoiseStream)."""
    if get_sampler(name, **opts).expected_nfe(10) is None:
        pytest.skip("adaptive step control uses one error norm over the batch (its steps depend on the batch)")
    ran = 0
    for path in PATHS:
        if not _compatible(get_sampler(name, **opts), path):
            continue
        big = _one_line(name, opts, path, 100).x[:10]
        small = _one_line(name, opts, path, 10).x
        torch.testing.assert_close(big, small, rtol=1e-9, atol=1e-9)
        assert bool(torch.isfinite(small).all())
        ran += 1
    assert ran > 0 or name in NEEDS_ARTEFACT, f"{name} ran on no path"


def test_stochastic_runs_differ_across_seeds_and_samples() -> None:
    """The per-sample streams are not one stream repeated: two samples from one start differ under eta = 1."""
    path = PATHS[0]
    x = torch.zeros(4, 2, dtype=F64) + float(path.interpolant.schedule.coeffs(path.grid(STEPS)[:1]).alpha)
    res = DDIM(eta=1.0).sample(path.field(), x, path.grid(STEPS), generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(res.x[0], res.x[1])


def test_gradients_flow_through_sample_with_grad_true() -> None:
    """``sample(..., grad=True)`` keeps the graph: d(mean of x_1)/d(x_init) is finite and non-zero for a
    deterministic and a stochastic sampler; the default (grad=False) returns a tensor without a graph."""
    path = PATHS[0]
    for name, opts in (("dpmpp_2m", {}), ("ddim", {"eta": 1.0}), ("heun", {})):
        x, _ = path.start(5, F64)
        x = x.clone().requires_grad_(True)
        smp = get_sampler(name, **opts)
        out = smp.sample(path.field(), x, path.grid(STEPS), generator=torch.Generator().manual_seed(0), grad=True)
        (g,) = torch.autograd.grad(out.x.sum(), x)
        assert bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0, name
        plain = smp.sample(path.field(), x.detach(), path.grid(STEPS), generator=torch.Generator().manual_seed(0))
        assert not plain.x.requires_grad
        torch.testing.assert_close(plain.x, out.x.detach())


def test_post_step_hook_and_transition_replacement() -> None:
    """A post-step hook's state replaces the step's result (also for loops that ignore ``_report``'s return);
    ``transition=`` needs a sampler with a one-step map."""
    path = PATHS[0]
    x, _ = path.start(3, F64)
    seen: list[int] = []

    def hook(info):
        seen.append(info.i)
        return info.x * 0.0

    for name in ("ddim", "dpmpp_2m", "euler_maruyama"):
        seen.clear()
        res = get_sampler(name).sample(path.field(), x, path.grid(STEPS), hook=hook,
                                       generator=torch.Generator().manual_seed(0))
        assert seen == list(range(STEPS)), name
        assert float(res.x.abs().max()) == 0.0, name
    with pytest.raises(ValueError, match="one-step transition"):
        get_sampler("dpmpp_2m").sample(path.field(), x, path.grid(STEPS), transition=lambda *a: a[0])
    with pytest.raises(ValueError, match="post-step hook"):
        get_sampler("dopri5").sample(path.field(), x, path.grid(STEPS), hook=hook)


def test_post_step_hook_is_kept_with_gradients_in_every_loop() -> None:
    """With ``grad=True`` the state is part of a graph, so ``_report`` cannot correct it in place: every loop must
    continue from ``_report``'s return value (multistep tables, DEIS, DPM-Solver++, SDE and DBIM loops included)."""
    seen: dict[str, list[int]] = {}
    for path in PATHS:
        for name in NAMES:
            sampler = get_sampler(name)
            if not _compatible(sampler, path) or name == "dopri5" or name.startswith(("diffusers", "kdiff")):
                continue
            x, cond = path.start(3, F64)
            x = x.clone().requires_grad_()
            calls: list[int] = []

            def hook(info, calls=calls):
                calls.append(info.i)
                return info.x * 0.0 + 0.25

            try:
                res = sampler.sample(path.field(), x, path.grid(STEPS), cond=cond, hook=hook, grad=True,
                                     generator=torch.Generator().manual_seed(0))
            except ValueError as err:  # samplers that refuse hooks say so up front
                assert "hook" in str(err), (name, err)
                continue
            seen[name] = calls
            assert calls and calls[-1] == len(calls) - 1 + calls[0], name
            torch.testing.assert_close(res.x.detach(), torch.full_like(res.x, 0.25), msg=name)
    assert {"dpmpp_2m", "deis_logrho", "dbim_ho", "euler_maruyama", "ddim"} <= set(seen), sorted(seen)


def test_a_loop_that_skips_report_is_caught_when_hooked() -> None:
    """A sampler whose loop does not report its steps through ``_report`` cannot silently drop a post-step hook."""

    class Silent(DDIM):
        name = "silent_ddim"

        def _sample(self, field, x, grid, *, cond, generator, callback, trajectory):
            for i in range(grid.numel() - 1):
                x = field.interpolant.implicit_step(x, grid[i], grid[i + 1], None, field.predict(x, grid[i], "x1"))
            return x, {}

    path = PATHS[0]
    x, _ = path.start(3, F64)
    Silent().sample(path.field(), x, path.grid(STEPS))  # fine without a hook
    with pytest.raises(RuntimeError, match="post-step hook did not run"):
        Silent().sample(path.field(), x, path.grid(STEPS), hook=lambda info: None)


def test_diffusers_adapter_through_genlab_sample_is_batch_size_invariant() -> None:
    """``genlab.sample`` hands a diffusers scheduler one generator per sample (NoiseStream.generators)."""
    pytest.importorskip("diffusers")
    import genlab

    path = PATHS[0]

    def run(n: int) -> Tensor:
        return genlab.sample(path.field(), sampler="diffusers:DDPMScheduler", steps=10, grid=path.grid(10), n=n,
                             shape=(2,), seed=3, dtype=F64).x

    torch.testing.assert_close(run(20)[:5], run(5), rtol=1e-9, atol=1e-9)
