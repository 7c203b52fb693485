"""PSNR and SSIM: known-MSE perturbations, constant images by hand, and scikit-image as reference."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.metrics.image import psnr, ssim


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_psnr_known_mse() -> None:
    x = torch.rand(3, 2, 8, 8, generator=gen(0), dtype=torch.float64) * 2 - 1
    signs = torch.where(torch.rand(3, 2, 8, 8, generator=gen(1)) < 0.5, -1.0, 1.0).double()
    c = torch.tensor([0.1, 0.02, 0.5], dtype=torch.float64).view(3, 1, 1, 1)
    y = x + c * signs  # MSE = c^2 exactly, per image
    want = 10 * torch.log10(4.0 / c.flatten() ** 2)
    assert torch.allclose(psnr(y, x), want, atol=1e-10)
    assert torch.allclose(psnr(y, x, data_range=1.0), 10 * torch.log10(1.0 / c.flatten() ** 2), atol=1e-10)
    assert bool(torch.isinf(psnr(x, x)).all())


def test_ssim_identity_and_monotone_in_noise() -> None:
    x = torch.rand(2, 3, 24, 24, generator=gen(2), dtype=torch.float64) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-12)
    z = torch.randn(2, 3, 24, 24, generator=gen(3), dtype=torch.float64)
    vals = torch.stack([ssim(x + s * z, x) for s in (0.02, 0.1, 0.3, 1.0)])
    assert bool((vals[1:] < vals[:-1]).all())


def test_ssim_constant_images_by_hand() -> None:
    a = torch.tensor([0.5, -0.2, 0.9], dtype=torch.float64)
    b = torch.tensor([-0.2, -0.2, 0.1], dtype=torch.float64)
    x = a.view(3, 1, 1, 1).expand(3, 1, 16, 16)
    y = b.view(3, 1, 1, 1).expand(3, 1, 16, 16)
    c1 = (0.01 * 2.0) ** 2  # variances are 0, so the structure term is C2/C2 = 1
    want = (2 * a * b + c1) / (a**2 + b**2 + c1)
    assert torch.allclose(ssim(x, y), want, atol=1e-12)
    assert ssim(x, y)[1].item() == pytest.approx(1.0)


def test_ssim_matches_skimage_and_is_per_sample() -> None:
    from skimage.metrics import structural_similarity

    x = torch.rand(3, 3, 32, 32, generator=gen(4), dtype=torch.float64) * 2 - 1
    y = (x + 0.25 * torch.randn(3, 3, 32, 32, generator=gen(5), dtype=torch.float64)).clamp(-1, 1)
    ours = ssim(y, x)
    for i in range(3):
        ref = structural_similarity(
            y[i].numpy(),
            x[i].numpy(),
            data_range=2.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=0,
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)
        assert ssim(y[i : i + 1], x[i : i + 1]).item() == pytest.approx(ours[i].item(), abs=1e-14)


def test_ssim_small_images_and_errors() -> None:
    x = torch.rand(4, 1, 8, 8, generator=gen(6)) * 2 - 1
    with pytest.raises(ValueError, match="window_size"):
        ssim(x, x)  # 11 > 8
    assert torch.allclose(ssim(x, x, window_size=7), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:2])
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0.0)
    assert not math.isnan(ssim(x, -x, window_size=5)[0].item())
