"""TimeMLP: shapes, float time, per-sample time, conditioning, learning a time-dependent map, errors."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.models import TimeMLP


def _net(**kw: object) -> TimeMLP:
    torch.manual_seed(0)
    return TimeMLP(3, hidden=32, depth=2, **kw)  # type: ignore[arg-type]


def test_shapes_heads_and_dtype() -> None:
    x = torch.randn(5, 3)
    assert _net()(x, torch.rand(5)).shape == (5, 3)
    heads = _net(out_dim=4 * 3)(x, 0.5)  # multimarginal g_0..g_3
    assert heads.shape == (5, 12) and heads.dtype == torch.float32
    t = torch.rand(5)
    out64 = _net().double()(x.double(), t)
    assert out64.dtype == torch.float64
    # Same weights (same seed): float32 and float64 computations agree to float32 accuracy.
    torch.testing.assert_close(out64.float(), _net()(x, t), rtol=0, atol=1e-5)
    assert sum(isinstance(m, torch.nn.Linear) for m in _net().modules()) == 3  # depth hidden layers + head


def test_time_per_sample_matches_scalar_time() -> None:
    net = _net()
    x = torch.randn(4, 3)
    t = torch.tensor([0.0, 0.2, 0.7, 1.0])
    out = net(x, t)
    for i in range(4):
        torch.testing.assert_close(out[i : i + 1], net(x[i : i + 1], float(t[i])), rtol=0, atol=1e-6)
    # a Python float is exact in float64 time; a float32 tensor holds 0.699999988 (the net sees that difference)
    torch.testing.assert_close(net(x, 0.7), net(x, torch.full((4,), 0.7, dtype=torch.float64)), rtol=0, atol=0)
    torch.testing.assert_close(net(x, 0.7), net(x, torch.tensor(0.7, dtype=torch.float64)), rtol=0, atol=0)
    torch.testing.assert_close(net(x, 0.7), net(x, torch.full((4,), 0.7)), rtol=0, atol=1e-5)


def test_time_is_not_quantised() -> None:
    net = _net()
    x = torch.randn(4, 3)
    # t * 1000 = 300.2 vs 300.4: an integer cast (or rounding) would make these identical.
    assert (net(x, 0.3002) - net(x, 0.3004)).abs().max() > 1e-6


def test_condition_enters_through_concatenated_columns() -> None:
    net = _net(cond_dim=2)
    x, c1, c2 = torch.randn(4, 3), torch.randn(4, 2), torch.randn(4, 2)
    assert (net(x, 0.5, c1) - net(x, 0.5, c2)).abs().max() > 1e-4
    first = net.net[0]
    assert first.in_features == 3 + 32 + 2
    with torch.no_grad():
        first.weight[:, -2:] = 0.0  # cut the condition columns: the output must stop depending on cond
    torch.testing.assert_close(net(x, 0.5, c1), net(x, 0.5, c2), rtol=0, atol=0)
    with torch.no_grad():
        first.weight[:, 3 + 32 :] = 1.0
        first.weight[:, :3] = 0.0  # now x is cut instead: x no longer matters
    torch.testing.assert_close(net(x, 0.5, c1), net(torch.randn(4, 3), 0.5, c1), rtol=0, atol=0)


def test_learns_a_time_dependent_map() -> None:
    """Fit f(x, t) = cos(2πt)·x. A network blind to t cannot beat MSE = E[cos²]·E[x²] = 0.5."""
    torch.manual_seed(0)
    net = TimeMLP(2, hidden=64, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 2, generator=g)
    t = torch.rand(256, generator=g)
    target = torch.cos(2 * math.pi * t)[:, None] * x
    first = None
    for _ in range(300):
        loss = (net(x, t) - target).pow(2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = (net(x, t) - target).pow(2).mean().item()
    assert final < 0.05 and final < first / 10


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown activation 'swish2'"):
        TimeMLP(2, activation="swish2")
    with pytest.raises(ValueError, match="time_features"):
        TimeMLP(2, time_features=5)
    with pytest.raises(ValueError, match="depth"):
        TimeMLP(2, depth=0)
    with pytest.raises(ValueError, match="dim"):
        TimeMLP(0)
    net = _net()
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        net(torch.randn(4, 2), 0.5)
    with pytest.raises(ValueError, match="cond_dim=0"):
        net(torch.randn(4, 3), 0.5, torch.randn(4, 2))
    with pytest.raises(ValueError, match="t must be"):
        net(torch.randn(4, 3), torch.rand(3))
    cnet = _net(cond_dim=2)
    with pytest.raises(ValueError, match="cond_dim=2"):
        cnet(torch.randn(4, 3), 0.5)
    with pytest.raises(ValueError, match="cond must have shape"):
        cnet(torch.randn(4, 3), 0.5, torch.randn(4, 3))
