"""UNet wrapper: float time (never integer-cast), condition channels, labels, odd sizes, errors."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from genlab.models import UNet


@pytest.fixture(scope="module")
def net() -> UNet:
    torch.manual_seed(0)
    return UNet(16, 1, 2).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def test_shape_dtype_and_time_mapping(net: UNet, x: torch.Tensor) -> None:
    out = net(x, torch.rand(4))
    assert out.shape == (4, 2, 16, 16) and out.dtype == torch.float32
    # The inner diffusers model gets t * time_scale as a float tensor of shape (B,) (0.3125 * 1000 is exact).
    inner = net.unet(x, torch.full((4,), 312.5)).sample
    torch.testing.assert_close(net(x, 0.3125), inner, rtol=0, atol=0)


@torch.no_grad()
def test_float_time_is_not_integer_cast(net: UNet, x: torch.Tensor) -> None:
    # 300.2 vs 300.4 (and 300.2 vs 300.7 under floor): an integer cast would give identical outputs.
    for t_a, t_b in [(0.3002, 0.3004), (0.3002, 0.3007)]:
        diff = (net(x, t_a) - net(x, t_b)).abs().max()
        assert diff > 1e-5, (t_a, t_b, diff)
    # The pitfall being guarded against: diffusers casts a Python float to torch.long.
    torch.testing.assert_close(net.unet(x, 300.2).sample, net.unet(x, 300.4).sample, rtol=0, atol=0)


@torch.no_grad()
def test_per_sample_time_matches_scalar_time(net: UNet, x: torch.Tensor) -> None:
    t = torch.tensor([0.0, 0.31, 0.77, 1.0])
    out = net(x, t)
    for i in range(4):
        torch.testing.assert_close(out[i : i + 1], net(x[i : i + 1], float(t[i])), rtol=0, atol=1e-5)
    torch.testing.assert_close(net(x, 0.5), net(x, torch.tensor(0.5)), rtol=0, atol=0)


@torch.no_grad()
def test_condition_channels_are_concatenated() -> None:
    torch.manual_seed(0)
    net = UNet(8, 1, 1, cond_channels=2).eval()
    g = torch.Generator().manual_seed(1)
    x, c1, c2 = (torch.randn(3, k, 8, 8, generator=g) for k in (1, 2, 2))
    a, b = net(x, 0.4, cond=c1), net(x, 0.4, cond=c2)
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(
        a, net.unet(torch.cat([x, c1], 1), torch.full((3,), 400.0)).sample, rtol=0, atol=1e-6
    )


@torch.no_grad()
def test_class_labels_change_output() -> None:
    torch.manual_seed(0)
    net = UNet(8, 1, 1, num_classes=10).eval()
    x = torch.randn(2, 1, 8, 8)
    a = net(x, 0.5, labels=torch.tensor([3, 3]))
    b = net(x, 0.5, labels=torch.tensor([3, 7]))
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)  # same label, same sample
    assert (a[1] - b[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        net(x, 0.5, labels=torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="num_classes=10"):
        net(x, 0.5)


@torch.no_grad()
def test_odd_sizes_are_padded_and_cropped_back() -> None:
    torch.manual_seed(0)
    net = UNet((7, 10), 1, 1, block_out_channels=(32, 32, 64), attention=True).eval()
    assert net.size_multiple == 4
    x = torch.randn(2, 1, 7, 10)
    out = net(x, 0.25)
    assert out.shape == (2, 1, 7, 10)
    padded = F.pad(x, (0, 2, 0, 1))  # 7x10 -> 8x12, zeros at the bottom/right
    want = net.unet(padded, torch.full((2,), 250.0)).sample[..., :7, :10]
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)


@torch.no_grad()
def test_digits_size_runs_without_padding() -> None:
    torch.manual_seed(0)
    net = UNet(8, 1, 1, block_out_channels=(32, 64, 64, 64))  # 8 -> 4 -> 2 -> 1
    assert net(torch.randn(2, 1, 8, 8), 0.5).shape == (2, 1, 8, 8)


def test_bad_arguments_raise_clear_errors(net: UNet, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"sample_size=8 is too small.*at most 4 levels"):
        UNet(8, 1, 1, block_out_channels=(32, 32, 32, 32, 32))
    with pytest.raises(ValueError, match="norm_num_groups"):
        UNet(8, 1, 1, block_out_channels=(32, 48), norm_num_groups=32)
    with pytest.raises(ValueError, match="unknown activation"):
        UNet(8, 1, 1, activation="tanhh")
    with pytest.raises(ValueError, match="time_scale"):
        UNet(8, 1, 1, time_scale=0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 16, 16\).*in_channels=1"):
        net(torch.randn(2, 3, 16, 16), 0.5)
    with pytest.raises(ValueError, match="sample_size"):
        net(torch.randn(2, 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match="cond_channels=0"):
        net(x, 0.5, cond=x)
    with pytest.raises(ValueError, match="num_classes=None"):
        net(x, 0.5, labels=torch.zeros(4, dtype=torch.long))
    cnet = UNet(8, 1, 1, cond_channels=1)
    with pytest.raises(ValueError, match="cond_channels=1"):
        cnet(torch.randn(2, 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match="upsample the condition"):
        cnet(torch.randn(2, 1, 8, 8), 0.5, cond=torch.randn(2, 1, 4, 4))
