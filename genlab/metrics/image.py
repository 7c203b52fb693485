"""Per-image quality metrics for ``(N, C, H, W)`` batches: PSNR and SSIM.

The default ``data_range = 2.0`` matches genlab images in ``[-1, 1]``. Both functions return one value per
image, shape ``(N,)``, in float64 where the device supports it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.utils import schedule_dtype

__all__ = ["psnr", "ssim"]


def _images(x: Tensor, y: Tensor, fn: str) -> tuple[Tensor, Tensor]:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{fn}: {name} must have shape (N, C, H, W); got {tuple(t.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"{fn}: x and y must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    dtype = schedule_dtype(x.device)
    return x.to(dtype), y.to(device=x.device, dtype=dtype)


def _check_range(data_range: float, fn: str) -> None:
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(
            f"{fn}: data_range must be a positive float (2.0 for [-1, 1] images); got {data_range!r}"
        )


def psnr(x: Tensor, y: Tensor, *, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio ``10 log₁₀(R² / MSE)`` per image, in dB.

    Args:
        x: Images ``(N, C, H, W)`` (e.g. reconstructions).
        y: Reference images of the same shape.
        data_range: ``R``, the span of valid pixel values (2.0 for ``[-1, 1]``, 1.0 for ``[0, 1]``, 255 ...).

    Returns:
        ``(N,)`` tensor; ``+inf`` for an image identical to its reference.
    """
    _check_range(data_range, "psnr")
    xs, ys = _images(x, y, "psnr")
    mse = (xs - ys).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_window(window_size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    k = torch.arange(window_size, dtype=dtype, device=device) - (window_size - 1) / 2.0
    g = torch.exp(-(k**2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim(
    x: Tensor,
    y: Tensor,
    *,
    data_range: float = 2.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Structural similarity index per image (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004, Eq. 13).

    Local statistics use a normalised ``window_size × window_size`` Gaussian window of standard deviation
    ``sigma`` (paper §III-C: 11, 1.5) applied without padding ("valid", as the authors' MATLAB code);
    variances and covariance use the window weights without Bessel correction. With
    ``C₁ = (k₁R)²``, ``C₂ = (k₂R)²`` (``k₁ = 0.01``, ``k₂ = 0.03``)

    ``SSIM = (2μₓμᵧ + C₁)(2σₓᵧ + C₂) / ((μₓ² + μᵧ² + C₁)(σₓ² + σᵧ² + C₂))``,

    averaged over positions and channels. Matches ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

    Args:
        x: Images ``(N, C, H, W)``.
        y: Reference images of the same shape.
        data_range: ``R`` (2.0 for ``[-1, 1]``).
        window_size: Odd window side; at most ``min(H, W)`` (use e.g. 7 for 8×8 images).
        sigma: Standard deviation of the Gaussian window.
        k1: Luminance constant.
        k2: Contrast constant.

    Returns:
        ``(N,)`` tensor of SSIM values in ``[-1, 1]`` (1 iff ``x == y``).
    """
    fn = "ssim"
    _check_range(data_range, fn)
    xs, ys = _images(x, y, fn)
    if (
        isinstance(window_size, bool)
        or not isinstance(window_size, int)
        or window_size < 1
        or window_size % 2 == 0
    ):
        raise ValueError(f"{fn}: window_size must be a positive odd int; got {window_size!r}")
    h, w = xs.shape[-2:]
    if window_size > min(h, w):
        raise ValueError(
            f"{fn}: window_size={window_size} does not fit images of size {h}x{w}; pass window_size <= "
            f"{min(h, w) if min(h, w) % 2 else min(h, w) - 1} (an odd number)"
        )
    if not sigma > 0:
        raise ValueError(f"{fn}: sigma must be > 0; got {sigma!r}")
    c = xs.shape[1]
    g = _gaussian_window(window_size, sigma, dtype=xs.dtype, device=xs.device)
    win = (g[:, None] * g[None, :]).expand(c, 1, window_size, window_size)

    def filt(t: Tensor) -> Tensor:
        return F.conv2d(t, win, groups=c)

    mu_x, mu_y = filt(xs), filt(ys)
    var_x = filt(xs * xs) - mu_x**2
    var_y = filt(ys * ys) - mu_y**2
    cov_xy = filt(xs * ys) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(dim=1)
