"""Metrics: distances between sample sets and Gaussians, and per-image quality (PSNR, SSIM)."""

from genlab.metrics.digits import (
    DigitsClassifier,
    DigitsFD,
    classifier_accuracy,
    digits_classifier_metadata,
    digits_fd,
    digits_features,
)
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
from genlab.metrics.likelihood import bits_per_dim, nll, nll_to_bits_per_dim

__all__ = [
    "DigitsClassifier",
    "DigitsFD",
    "GaussianMoments",
    "bits_per_dim",
    "classifier_accuracy",
    "digits_classifier_metadata",
    "digits_fd",
    "digits_features",
    "energy_distance",
    "frechet_distance",
    "gaussian_moments",
    "gaussian_w2",
    "gaussian_w2_samples",
    "mmd",
    "mmd2",
    "nll",
    "nll_to_bits_per_dim",
    "psnr",
    "sliced_wasserstein",
    "sqrtm_psd",
    "ssim",
]
