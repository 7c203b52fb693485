"""The training hot path (issue 14, throughput) is faster but must give the same numbers, bit for bit.

Each test writes the former formula out in full and compares with ``torch.equal``: the per-sample Box–Muller noise
(now with in-place operations), ``Interpolant.sample`` (now casting only the coefficients it uses instead of
``Coeffs.to``), ``as_time``'s range check (one ``aminmax``) and ``check_finite`` on a scalar loss.
"""

from __future__ import annotations

import math

import pytest
import torch

from genlab.interpolants import build_interpolant
from genlab.utils import append_dims, as_time, check_finite, randn_per_sample


def _former_randn_per_sample(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """``randn_per_sample`` on CPU as it was written before the in-place rewrite."""
    n, per = shape[0], math.prod(shape[1:])
    half = (per + 1) // 2
    u = torch.rand((n, 2, half), generator=generator, dtype=torch.float64)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[:, 0]))
    angle = (2.0 * math.pi) * u[:, 1]
    z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :per]
    return z.reshape(shape).to(torch.float32)


@pytest.mark.parametrize("shape", [(512, 2), (7, 3), (5, 1, 4, 5)])
def test_randn_per_sample_equals_former_formula_and_stays_batch_invariant(shape: tuple[int, ...]) -> None:
    new = randn_per_sample(shape, generator=torch.Generator().manual_seed(3))
    old = _former_randn_per_sample(shape, torch.Generator().manual_seed(3))
    assert torch.equal(new, old)
    k = 2
    head = randn_per_sample((k, *shape[1:]), generator=torch.Generator().manual_seed(3))
    assert torch.equal(head, new[:k])


@pytest.mark.parametrize("name", ["rectified_flow", "stochastic", "vp"])
def test_interpolant_sample_equals_former_coefficient_cast(name: str) -> None:
    interp = build_interpolant(name)
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(64, 3, generator=gen)
    x0 = torch.randn(64, 3, generator=gen)
    z = torch.randn(64, 3, generator=gen)
    t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    ps = interp.sample(x0, x1, t, z)
    c = interp.schedule.coeffs(ps.t).to(x1.dtype)  # the former cast of every coefficient
    a, b, da, db = (append_dims(v, 2) for v in (c.alpha, c.beta, c.d_alpha, c.d_beta))
    x_t, vel = a * x0 + b * x1, da * x0 + db * x1
    if interp.schedule.has_noise:
        g, dg = append_dims(c.gamma, 2), append_dims(c.d_gamma, 2)
        x_t = x_t + g * z
        vel = vel + torch.where(torch.isfinite(dg), dg, torch.zeros_like(dg)) * z
    assert torch.equal(ps.x_t, x_t)
    assert torch.equal(ps.targets["velocity"], vel)


def test_as_time_range_check_and_check_finite_scalar() -> None:
    x = torch.zeros(4, 2)
    assert torch.equal(as_time(torch.tensor([0.0, 0.5, 1.0, 0.25]), x), torch.tensor([0.0, 0.5, 1.0, 0.25]).double())
    for bad in (torch.tensor([0.0, 1.5, 0.2, 0.1]), torch.tensor([-1e-9, 0.5, 0.2, 0.1])):
        with pytest.raises(ValueError, match="must lie in"):
            as_time(bad, x)
    assert as_time(torch.zeros(0), torch.zeros(0, 2)).shape == (0,)
    check_finite(torch.tensor(1.5), name="loss")
    check_finite(torch.tensor([2.0]), name="loss")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="loss contains 1 non-finite"):
            check_finite(torch.tensor(bad), name="loss")


@pytest.mark.parametrize("name", ["rectified_flow", "stochastic", "vp", "brownian_bridge"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_interpolant_sample_of_some_targets_equals_the_full_sample(name: str, dtype: torch.dtype) -> None:
    """targets=(kind,) computes only that target, with the same x_t and target as the full sample."""
    interp = build_interpolant(name)
    gen = torch.Generator().manual_seed(1)
    x1, x0, z = (torch.randn(32, 2, 3, generator=gen, dtype=dtype) for _ in range(3))
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    full = interp.sample(x0, x1, t, z)
    for kind in sorted(full.targets):
        part = interp.sample(x0, x1, t, z, targets=(kind,))
        assert torch.equal(part.x_t, full.x_t)
        assert torch.equal(part.targets[kind], full.targets[kind])
        assert ("velocity" in part.targets) == (kind == "velocity")
        assert ("score" in part.targets) == (kind == "score")
    with pytest.raises(ValueError, match="not prediction kinds"):
        interp.sample(x0, x1, t, z, targets=("speed",))
