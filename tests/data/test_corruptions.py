"""Degradations x0 = m(x1): masks, pool/upsample, Sobel edges, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.data.corruptions import apply_mask, box_mask, pixel_mask, pool_upsample, sobel_edges


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_box_mask_is_one_box() -> None:
    m = box_mask(200, 8, 10, box_size=(3, 4), generator=gen(0))
    assert m.shape == (200, 1, 8, 10)
    assert bool(((m == 0) | (m == 1)).all())
    for k in range(200):
        rows, cols = torch.nonzero(m[k, 0] == 0, as_tuple=True)
        assert rows.numel() == 12
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 3  # contiguous 3 x 4 block
    tops = {int(torch.nonzero(m[k, 0] == 0)[0, 0]) for k in range(200)}
    assert tops == set(range(6))  # every admissible position is reached
    assert torch.equal(m, box_mask(200, 8, 10, box_size=(3, 4), generator=gen(0)))


def test_pixel_mask_rate() -> None:
    m = pixel_mask(500, 8, 8, drop_prob=0.3, generator=gen(1))
    assert abs(1 - m.mean().item() - 0.3) < 0.01
    assert bool((pixel_mask(3, 4, 4, drop_prob=0.0) == 1).all())


def test_apply_mask() -> None:
    x = torch.randn(4, 3, 8, 8, generator=gen(2))
    m = pixel_mask(4, 8, 8, generator=gen(3))
    y = apply_mask(x, m, fill=0.0)
    keep = m.expand_as(x) == 1
    assert torch.equal(y[keep], x[keep]) and bool((y[~keep] == 0).all())
    assert bool((apply_mask(x, m, fill=-1.0)[~keep] == -1).all())
    with pytest.raises(ValueError, match="mask must have shape"):
        apply_mask(x, m[:, :, :4])


@pytest.mark.parametrize("factor", [2, 4])
def test_pool_upsample_nearest_blocks(factor: int) -> None:
    x = torch.rand(5, 2, 16, 16, generator=gen(4), dtype=torch.float64)
    y = pool_upsample(x, factor)
    blocks = y.unfold(2, factor, factor).unfold(3, factor, factor)  # (N, C, H/f, W/f, f, f)
    assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))  # constant on blocks
    xb = x.unfold(2, factor, factor).unfold(3, factor, factor)
    assert torch.allclose(blocks[..., 0, 0], xb.mean(dim=(-1, -2)), atol=1e-12)  # equal to the block means


def test_pool_upsample_bilinear_reproduces_a_ramp() -> None:
    # avg-pool of a linear ramp is a ramp; bilinear (align_corners=False) reproduces it away from the borders
    ramp = torch.arange(16, dtype=torch.float64).expand(1, 1, 16, 16).clone()
    y = pool_upsample(ramp, 2, mode="bilinear")
    assert torch.allclose(y[..., 1:-1], ramp[..., 1:-1], atol=1e-12)
    with pytest.raises(ValueError, match="divisible"):
        pool_upsample(ramp[..., :15], 2)


def test_sobel_hand_values() -> None:
    const = torch.full((1, 1, 6, 6), 0.3)
    assert torch.allclose(sobel_edges(const), torch.full_like(const, -1.0))
    step = -torch.ones(1, 1, 6, 6, dtype=torch.float64)
    step[..., 3:] = 1.0  # u jumps 0 -> 1 between columns 2 and 3
    e = sobel_edges(step)
    want = -torch.ones(6, 6, dtype=torch.float64)
    want[:, 2:4] = math.sqrt(2) - 1  # |g_x| = (1 + 2 + 1)/4 = 1, g_y = 0 -> 2 * 1/sqrt(2) - 1
    assert torch.allclose(e[0, 0], want, atol=1e-12)


def test_sobel_matches_scipy() -> None:
    from scipy import ndimage

    x = torch.rand(2, 3, 9, 7, generator=gen(5), dtype=torch.float64) * 2 - 1
    e = sobel_edges(x)
    u = ((x + 1) / 2).numpy()
    for n in range(2):
        for c in range(3):
            gx = ndimage.sobel(u[n, c], axis=1, mode="nearest") / 4
            gy = ndimage.sobel(u[n, c], axis=0, mode="nearest") / 4
            ref = 2 * np.hypot(gx, gy) / math.sqrt(2) - 1
            np.testing.assert_allclose(e[n, c].numpy(), ref, atol=1e-12)
    assert e.min() >= -1 and e.max() <= 1
