"""2-D toys: exact standardisation (mean 0, E|x|^2 = 2), geometry of the noiseless shapes, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.data.toys import TOY_NAMES, checkerboard, eight_gaussians, moons, pinwheel, swiss_roll, toy

SCALE_NOISELESS = {  # sqrt(2 / raw centred second moment) at noise = 0, from the closed forms
    "moons": math.sqrt(2.0 / (0.75 + 0.5 - 4 / math.pi**2 + (4 / math.pi - 0.5) ** 2 / 4)),
    "eight": math.sqrt(2.0),
    "checker": math.sqrt(2.0 / (8.0 / 3.0)),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_shape_dtype_determinism(name: str) -> None:
    a = toy(name, 257, generator=gen(3))
    b = toy(name, 257, generator=gen(3))
    c = toy(name, 257, generator=gen(4))
    assert a.shape == (257, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert toy(name, 5, generator=gen(0), dtype=torch.float64).dtype == torch.float64
    assert toy(name, 0, generator=gen(0)).shape == (0, 2)


@pytest.mark.parametrize("name", TOY_NAMES)
@pytest.mark.parametrize("noise", [None, 0.3])
def test_standardised_moments(name: str, noise: float | None) -> None:
    kw = {} if noise is None else {"noise": noise}
    x = toy(name, 100_000, generator=gen(0), dtype=torch.float64, **kw)
    assert x.mean(0).abs().max() < 0.02
    assert abs(x.pow(2).sum(1).mean().item() - 2.0) < 0.03


def test_eight_gaussians_noiseless_geometry() -> None:
    x = eight_gaussians(4000, noise=0.0, generator=gen(1), dtype=torch.float64)
    assert torch.allclose(x.norm(dim=1), torch.full((4000,), SCALE_NOISELESS["eight"], dtype=torch.float64))
    k = torch.atan2(x[:, 1], x[:, 0]) / (math.pi / 4)
    assert torch.allclose(k, k.round(), atol=1e-9)
    counts = torch.bincount(torch.remainder(k.round().long(), 8), minlength=8).double() / 4000
    assert (counts - 0.125).abs().max() < 0.03


def test_checkerboard_lies_on_black_squares() -> None:
    raw = checkerboard(5000, generator=gen(2), dtype=torch.float64) / SCALE_NOISELESS["checker"]
    assert raw.abs().max() <= 2.0 + 1e-9
    parity = torch.remainder(torch.floor(raw[:, 0]) + torch.floor(raw[:, 1]), 2)
    assert bool((parity == 0).all())
    # all 8 black squares are used, each with probability 1/8
    cell = (torch.floor(raw[:, 0]) + 2) * 4 + (torch.floor(raw[:, 1]) + 2)
    counts = torch.bincount(cell.long(), minlength=16).double() / 5000
    assert int((counts > 0).sum()) == 8 and (counts[counts > 0] - 0.125).abs().max() < 0.03


def test_moons_noiseless_lie_on_arcs() -> None:
    raw = moons(3000, noise=0.0, generator=gen(5), dtype=torch.float64) / SCALE_NOISELESS["moons"]
    raw = raw + torch.tensor([0.5, 0.25], dtype=torch.float64)
    outer = (raw.norm(dim=1) - 1).abs() < 1e-9
    inner = ((raw - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-9
    assert bool((outer | inner).all())
    assert bool((raw[outer, 1] >= -1e-9).all()) and bool((raw[inner, 1] <= 0.5 + 1e-9).all())
    assert abs(outer.double().mean().item() - 0.5) < 0.05


def test_swiss_roll_noiseless_radius_equals_angle() -> None:
    a, b = 1.5 * math.pi, 4.5 * math.pi
    mean = torch.tensor([2.0, 2.0 / (3 * math.pi)], dtype=torch.float64)
    second = (b**3 - a**3) / (3 * (b - a)) - 4.0 - (2.0 / (3 * math.pi)) ** 2
    raw = swiss_roll(2000, noise=0.0, generator=gen(6), dtype=torch.float64) / math.sqrt(2.0 / second) + mean
    t = raw.norm(dim=1)
    assert bool(((t > a - 1e-9) & (t < b + 1e-9)).all())
    # (t cos t, t sin t): the polar angle equals t modulo 2 pi
    diff = torch.remainder(torch.atan2(raw[:, 1], raw[:, 0]) - t + math.pi, 2 * math.pi) - math.pi
    assert diff.abs().max() < 1e-8


def test_pinwheel_noiseless_arms() -> None:
    rate = 0.25
    x = pinwheel(1000, noise=0.0, tangential_std=0.0, rate=rate, generator=gen(7), dtype=torch.float64)
    raw = x / math.sqrt(2.0)  # E||f||^2 = 1 with no noise
    assert torch.allclose(raw.norm(dim=1), torch.ones(1000, dtype=torch.float64))
    # point = (cos(-phi), sin(-phi)) with phi = 2 pi k / 5 + rate * e
    k = torch.remainder(-torch.atan2(raw[:, 1], raw[:, 0]) - rate * math.e, 2 * math.pi) / (2 * math.pi / 5)
    assert torch.allclose(k, k.round(), atol=1e-8)
    assert len(torch.unique(torch.remainder(k.round(), 5))) == 5


def test_generator_device_and_alias() -> None:
    x = toy("8gaussians", 10, generator=gen(0))
    assert torch.equal(x, eight_gaussians(10, generator=gen(0)))
    assert toy("swiss-roll", 3, generator=gen(0)).device == torch.device("cpu")


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="moons, eight_gaussians"):
        toy("spiral", 10)
    with pytest.raises(ValueError, match="n must be"):
        moons(-1)
    with pytest.raises(ValueError, match="noise"):
        checkerboard(4, noise=-0.1)
    with pytest.raises(ValueError, match="n_arms"):
        pinwheel(4, n_arms=1)
