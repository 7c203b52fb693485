"""Metrics: distances between sample sets and Gaussians, and per-image quality (PSNR, SSIM)."""

from genlab.metrics.distances import (
    GaussianMoments,
    energy_distance,
    frechet_distance,
    gaussian_moments,
    gaussian_w2,
    gaussian_w2_samples,
    mmd,
    mmd2,
    sliced_wasserstein,
    sqrtm_psd,
)
from genlab.metrics.image import psnr, ssim

__all__ = [
    "GaussianMoments",
    "energy_distance",
    "frechet_distance",
    "gaussian_moments",
    "gaussian_w2",
    "gaussian_w2_samples",
    "mmd",
    "mmd2",
    "psnr",
    "sliced_wasserstein",
    "sqrtm_psd",
    "ssim",
]
