"""Data-dependent couplings: x0 = m(x1) + σζ, super-resolution and tile-masked inpainting (Albergo et al. 2024)."""

from __future__ import annotations

import pytest
import torch

from genlab.couplings import (
    DataDependent,
    MaskedCoupling,
    SuperResolution,
    downsample_map,
    mask_velocity,
    tile_mask,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _m(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x.flip(-1) + 1.0


def test_data_dependent_noise_has_mean_zero_and_std_sigma() -> None:
    sigma = 0.3
    x1 = torch.randn(3000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(123))
    out = DataDependent(_m, sigma).sample(x1, generator=_gen())
    resid = out.x0 - _m(x1)
    n = resid.numel()
    assert abs(float(resid.mean())) < 5 * sigma / n**0.5
    assert abs(float(resid.std()) / sigma - 1) < 5 / (2 * n) ** 0.5
    # ζ independent of x1
    corr = ((resid - resid.mean(0)) * (x1 - x1.mean(0))).mean(0) / (resid.std(0) * x1.std(0))
    assert corr.abs().max() < 5 / x1.shape[0] ** 0.5
    torch.testing.assert_close(out.cond, _m(x1), rtol=0, atol=0)


def test_data_dependent_sigma_zero_is_exact_and_cond_flag() -> None:
    x1 = torch.randn(5, 2, 4, 4)
    out = DataDependent(_m, 0.0, cond=False).sample((x1, torch.arange(5)), generator=_gen())
    assert torch.equal(out.x0, _m(x1)) and out.cond is None


def test_data_dependent_batch_size_invariance() -> None:
    x1 = torch.randn(6, 3)
    coupling = DataDependent(_m, 0.7)
    assert torch.equal(
        coupling.sample(x1, generator=_gen(5)).x0[:2], coupling.sample(x1[:2], generator=_gen(5)).x0
    )


def test_data_dependent_source_from_observation() -> None:
    obs = torch.randn(2000, 3, dtype=torch.float64)
    x0, cond = DataDependent(_m, 0.2).source(obs, generator=_gen(1))
    assert cond is obs
    assert abs(float((x0 - obs).std()) / 0.2 - 1) < 0.05


def test_data_dependent_bad_inputs() -> None:
    with pytest.raises(ValueError, match="sigma"):
        DataDependent(_m, -1.0)
    with pytest.raises(TypeError, match="callable"):
        DataDependent("blur", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="m\\(x1\\)"):
        DataDependent(lambda x: x[:, :1], 0.1).sample(torch.zeros(3, 2))


def _block_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // k, k, w // k, k).mean(dim=(3, 5))


def test_downsample_nearest_is_block_mean_constant_on_blocks() -> None:
    k = 4
    x1 = torch.randn(3, 2, 16, 8, dtype=torch.float64)
    out = SuperResolution(k, 0.0).sample(x1)
    blocks = out.x0.reshape(3, 2, 4, k, 2, k)
    # constant on k×k blocks, equal to the block mean of x1
    expected = _block_mean(x1, k)[:, :, :, None, :, None].expand_as(blocks)
    torch.testing.assert_close(blocks, expected, rtol=0, atol=1e-12)
    assert torch.equal(out.cond, out.x0)
    # with noise: x0 − U(D(x1)) has std σ
    noisy = SuperResolution(k, 0.5).sample(x1.repeat(50, 1, 1, 1), generator=_gen())
    assert abs(float((noisy.x0 - noisy.cond).std()) / 0.5 - 1) < 0.03


def test_downsample_bilinear_reproduces_affine_images_in_interior() -> None:
    # block means of an affine image are its values at block centres, and bilinear up-sampling
    # (align_corners=False) interpolates them back exactly away from the border; nearest does not.
    k = 2
    i = torch.arange(12, dtype=torch.float64)[:, None]
    j = torch.arange(10, dtype=torch.float64)[None, :]
    x1 = (0.3 * i - 0.7 * j + 2.0).expand(1, 1, 12, 10)
    bil = downsample_map(k, mode="bilinear")(x1)
    torch.testing.assert_close(bil[..., 1:-1, 1:-1], x1[..., 1:-1, 1:-1], rtol=0, atol=1e-12)
    near = downsample_map(k)(x1)
    assert (near - x1)[..., 1:-1, 1:-1].abs().max() > 0.1


def test_downsample_bad_inputs() -> None:
    with pytest.raises(ValueError, match="multiples of factor"):
        downsample_map(3)(torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="factor"):
        downsample_map(0)
    with pytest.raises(ValueError, match="mode"):
        downsample_map(2, mode="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="\\(B, C, H, W\\)"):
        downsample_map(2)(torch.zeros(4, 8))


def test_masked_coupling_keeps_observed_pixels_and_fills_noise() -> None:
    x1 = torch.full((64, 3, 16, 16), 7.0)
    out = MaskedCoupling(64, 0.3).sample(x1, generator=_gen())
    mask = out.mask
    assert mask is not None and mask.shape == (64, 1, 16, 16)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    observed = mask.expand_as(x1).bool()
    assert torch.equal(out.x0[observed], x1[observed])  # exact
    # x0 = ξ∘x1 + (1−ξ)∘ζ: masked pixels are N(0, 1), separate noise per channel
    filled = out.x0[~observed]
    assert abs(float(filled.mean())) < 0.05 and abs(float(filled.std()) - 1) < 0.05
    torch.testing.assert_close(out.x0, mask * x1 + (1 - mask) * out.x0, rtol=0, atol=0)
    assert not torch.equal(out.x0[:, 0][~observed[:, 0]], out.x0[:, 1][~observed[:, 1]])
    # the linear-interpolant velocity x1 − x0 vanishes on observed pixels: masking it changes nothing
    v = x1 - out.x0
    assert torch.equal(mask_velocity(v, mask), v)
    assert mask_velocity(torch.ones_like(x1), mask)[observed].abs().max() == 0


def test_masked_fraction_is_p_and_masks_are_tile_constant() -> None:
    p, n = 0.3, 400
    out = MaskedCoupling(64, p).sample(torch.zeros(n, 1, 16, 24), generator=_gen(2))
    tiles = out.mask.reshape(n, 8, 2, 8, 3)  # 8×8 tiles of 2×3 pixels
    assert torch.equal(tiles, tiles[:, :, :1, :, :1].expand_as(tiles))
    frac = 1 - float(tiles[:, :, 0, :, 0].mean())
    assert abs(frac - p) < 4 * (p * (1 - p) / (n * 64)) ** 0.5


def test_tile_mask_uneven_grid_follows_floor_rule() -> None:
    mask = tile_mask(50, 10, 7, tiles=(4, 3), p=0.5, generator=_gen(3))
    row_tile = torch.arange(10) * 4 // 10
    col_tile = torch.arange(7) * 3 // 7
    for r in range(4):
        for c in range(3):
            block = mask[:, 0][:, row_tile == r][:, :, col_tile == c]
            assert torch.equal(block, block[:, :1, :1].expand_as(block))
    # every tile is a separate Bernoulli: tiles are not all equal
    assert mask.flatten(1).std(1).gt(0).any()


def test_masked_cond_channels_and_edge_probabilities() -> None:
    x1 = torch.randn(4, 3, 8, 8)
    out = MaskedCoupling(16, 0.5).sample(x1, generator=_gen(4))
    assert out.cond.shape == (4, 4, 8, 8)
    torch.testing.assert_close(out.cond[:, :3], out.mask * x1, rtol=0, atol=0)
    assert torch.equal(out.cond[:, 3:], out.mask)
    assert MaskedCoupling(16, 0.5, cond="mask").sample(x1).cond.shape == (4, 1, 8, 8)
    assert MaskedCoupling(16, 0.5, cond="none").sample(x1).cond is None
    assert torch.equal(MaskedCoupling(16, 0.0).sample(x1).x0, x1)
    assert MaskedCoupling(16, 1.0).sample(x1).mask.sum() == 0


def test_masked_coupling_batch_size_invariance_and_source() -> None:
    x1 = torch.randn(5, 2, 8, 8)
    coupling = MaskedCoupling(16, 0.4)
    big = coupling.sample(x1, generator=_gen(9))
    small = coupling.sample(x1[:2], generator=_gen(9))
    assert torch.equal(big.mask[:2], small.mask) and torch.equal(big.x0[:2], small.x0)
    x0, cond = coupling.source(x1, big.mask, generator=_gen(1))
    keep = big.mask.expand_as(x1).bool()
    assert torch.equal(x0[keep], x1[keep]) and torch.equal(cond, big.cond)


def test_masked_coupling_bad_inputs() -> None:
    with pytest.raises(ValueError, match="perfect square"):
        MaskedCoupling(65)
    with pytest.raises(ValueError, match="p "):
        MaskedCoupling(64, 1.5)
    with pytest.raises(ValueError, match="cond"):
        MaskedCoupling(64, 0.3, cond="image")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="\\(B, C, H, W\\)"):
        MaskedCoupling().sample(torch.zeros(4, 64))
    with pytest.raises(ValueError, match="tile grid"):
        MaskedCoupling(64).sample(torch.zeros(2, 1, 4, 4))
