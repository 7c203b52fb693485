"""Metrics: distances between sample sets and Gaussians, support metrics (precision/recall, density/coverage,
C2ST), uncertainty (repeated-draw estimates, data floors, verdicts) and per-image quality (PSNR, SSIM)."""

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
from genlab.metrics.eot import bw2, cbw2_uvp, gaussian_fit
from genlab.metrics.fid import KIDResult, image_fid, image_kid
from genlab.metrics.image import psnr, ssim
from genlab.metrics.likelihood import bits_per_dim, nll, nll_to_bits_per_dim
from genlab.metrics.mnist import MnistClassifier, MnistFD, mnist_classifier_metadata
from genlab.metrics.twosample import (
    C2STResult,
    DensityCoverage,
    PrecisionRecall,
    classifier_two_sample_test,
    density_coverage,
    precision_recall,
    wilson_interval,
)
from genlab.metrics.uncertainty import (
    Estimate,
    MetricReport,
    Verdict,
    compare,
    data_floor,
    estimate,
    student_t_quantile,
)

__all__ = [
    "C2STResult",
    "DensityCoverage",
    "DigitsClassifier",
    "DigitsFD",
    "Estimate",
    "GaussianMoments",
    "KIDResult",
    "MetricReport",
    "MnistClassifier",
    "MnistFD",
    "PrecisionRecall",
    "Verdict",
    "bits_per_dim",
    "bw2",
    "cbw2_uvp",
    "classifier_accuracy",
    "classifier_two_sample_test",
    "compare",
    "data_floor",
    "density_coverage",
    "digits_classifier_metadata",
    "digits_fd",
    "digits_features",
    "energy_distance",
    "estimate",
    "frechet_distance",
    "gaussian_fit",
    "gaussian_moments",
    "gaussian_w2",
    "gaussian_w2_samples",
    "image_fid",
    "image_kid",
    "mmd",
    "mmd2",
    "mnist_classifier_metadata",
    "nll",
    "nll_to_bits_per_dim",
    "precision_recall",
    "psnr",
    "sliced_wasserstein",
    "sqrtm_psd",
    "ssim",
    "student_t_quantile",
    "wilson_interval",
]
