"""FID/KID through torchmetrics with local feature extractors: equal to genlab's FD on the same features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torchmetrics")

from genlab.data import get_split
from genlab.metrics.digits import DigitsFD
from genlab.metrics.distances import frechet_distance, gaussian_moments
from genlab.metrics.fid import image_fid, image_kid, load_feature_net


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    split = get_split("digits", split_seed=0, test_fraction=0.2)
    return split.train.tensors[0][:400], split.test.tensors[0][:300]


def test_fid_with_digits_features_matches_genlab_fd() -> None:
    train, test = _digits()
    fid = image_fid(test, train, features="digits")
    net = load_feature_net("digits", example=test)
    f_real = net((test + 1) / 2).double()
    f_fake = net((train + 1) / 2).double()
    mr, mf = gaussian_moments(f_real), gaussian_moments(f_fake)
    # torchmetrics normalises the covariance by n - 1; genlab's gaussian_moments by n (checked both ways)
    n_r, n_f = f_real.shape[0], f_fake.shape[0]
    ours = float(frechet_distance(mf.mean, mf.cov * n_f / (n_f - 1), mr.mean, mr.cov * n_r / (n_r - 1)))
    assert fid == pytest.approx(ours, rel=5e-3)  # torchmetrics' matrix square root runs in float32
    assert fid == pytest.approx(DigitsFD(test).score(train), rel=0.02)  # same features, n vs n-1 only
    noisy = (train + 0.5 * torch.randn_like(train)).clamp(-1, 1)
    assert image_fid(test, noisy, features="digits") > 2 * fid


def test_kid_is_near_zero_for_the_same_distribution_and_grows_with_noise() -> None:
    train, test = _digits()
    same = image_kid(test, train, features="digits", subsets=20, subset_size=100)
    noisy = image_kid(test, (train + 0.5 * torch.randn_like(train)).clamp(-1, 1), features="digits", subsets=20)
    assert abs(same.mean) < 3 * same.std + 1e-3 and noisy.mean > same.mean + 2 * noisy.std
    assert image_kid(test, train, features="digits", subsets=20, seed=1) == image_kid(
        test, train, features="digits", subsets=20, seed=1
    )


def test_local_torchscript_extractor_and_errors(tmp_path: Path) -> None:
    train, test = _digits()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16))
    path = tmp_path / "feat.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    assert image_fid(test, train, features=path) == pytest.approx(image_fid(test, train, features=net), rel=1e-6)
    with pytest.raises(FileNotFoundError, match="downloads nothing"):
        image_fid(test, train, features=tmp_path / "inception.pt")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        image_fid(test * 255, train)
    with pytest.raises(FileNotFoundError, match="'digits', 'mnist'"):
        image_fid(test, train, features="inception")


def test_psnr_matches_torchmetrics_and_ssim_matches_scikit_image() -> None:
    """Library parity: genlab's PSNR equals torchmetrics'; genlab's SSIM equals scikit-image's Wang et al. form
    (Gaussian σ = 1.5, no sample-covariance correction); torchmetrics' SSIM pads and differs (not used)."""
    from skimage.metrics import structural_similarity
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from genlab.metrics import psnr, ssim

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.2 * torch.randn(3, 1, 28, 28, generator=g, dtype=torch.float64)).clamp(-1, 1)
    lib = peak_signal_noise_ratio(y, x, data_range=2.0, reduction="none", dim=(1, 2, 3))
    torch.testing.assert_close(psnr(x, y), lib, rtol=1e-5, atol=1e-4)
    sk = torch.tensor([structural_similarity(x[i, 0].numpy(), y[i, 0].numpy(), gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=2.0) for i in range(3)],
                      dtype=torch.float64)
    torch.testing.assert_close(ssim(x, y), sk, rtol=1e-10, atol=1e-10)
