"""Blur kernels: isotropic/anisotropic Gaussian and linear motion, each normalised to sum 1.

Kernels are ``(kh, kw)`` tensors whose centre pixel is ``((kh − 1)//2, (kw − 1)//2)`` (the convention of
:func:`kernel_center`, shared by :class:`~genlab.inverse.operators.FFTBlur` and
:class:`~genlab.inverse.operators.ConvBlur`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["gaussian_kernel", "kernel_center", "motion_kernel"]


def kernel_center(kernel_size: tuple[int, int]) -> tuple[int, int]:
    """Index of the pixel a kernel of size ``(kh, kw)`` is centred on: ``((kh − 1)//2, (kw − 1)//2)``.

    This matches ``scipy.signal.convolve2d(..., mode="same")``.
    """
    return (kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2


def _pair(value: float | Sequence[int | float], *, name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    if isinstance(value, Sequence) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise TypeError(f"{name} must be a number or a pair of numbers; got {value!r}")


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)  # type: ignore[arg-type]
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair):
        raise ValueError(f"size must be a positive int or a pair of positive ints; got {size!r}")
    return pair  # type: ignore[return-value]


def gaussian_kernel(
    size: int | Sequence[int],
    sigma: float | Sequence[float],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sampled Gaussian ``k[i, j] ∝ exp(−(i − c_h)²/(2σ_h²) − (j − c_w)²/(2σ_w²))``, normalised to sum 1.

    The continuous centre is ``c = (size − 1)/2``, so odd sizes are exactly symmetric about the centre pixel.
    DPS (Chung et al., ICLR 2023) uses ``size=61, sigma=3.0`` at 256².

    Args:
        size: Kernel size, an int or ``(kh, kw)``.
        sigma: Standard deviation(s) in pixels, ``> 0``.
        dtype: Result dtype.
        device: Result device.

    Returns:
        A ``(kh, kw)`` tensor.
    """
    kh, kw = _size(size)
    sh, sw = _pair(sigma, name="sigma")
    if not (sh > 0 and sw > 0 and math.isfinite(sh) and math.isfinite(sw)):
        raise ValueError(f"sigma must be finite and > 0; got {sigma!r}")
    i = torch.arange(kh, dtype=torch.float64, device=device) - (kh - 1) / 2
    j = torch.arange(kw, dtype=torch.float64, device=device) - (kw - 1) / 2
    k = torch.exp(-(i[:, None] ** 2) / (2 * sh**2) - (j[None, :] ** 2) / (2 * sw**2))
    return (k / k.sum()).to(dtype)


def motion_kernel(
    size: int,
    angle: float,
    *,
    length: float | None = None,
    n_points: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Linear motion blur: a straight segment through the kernel centre, rasterised with bilinear weights.

    The segment has ``length − 1`` pixels between its end points (so ``angle=0, length=size`` covers the whole
    central row), direction ``angle`` degrees counter-clockwise from the +x axis (rows point down, so the
    direction in (row, col) is ``(−sin θ, cos θ)``). It is sampled at ``n_points`` equispaced points, each
    splatted bilinearly with equal weight; the result sums to 1 and is point-symmetric about the centre.
    This is a deterministic linear kernel, not the random-trajectory kernels DPS draws from the
    ``motionblur`` package.

    Args:
        size: Odd kernel size (the kernel is ``size × size`` with centre ``(size − 1)/2``).
        angle: Direction in degrees.
        length: Segment length in pixels, in ``[1, size]`` (default ``size``); it must stay inside the kernel.
        n_points: Number of samples along the segment (default ``8·size + 1``).
        dtype: Result dtype.
        device: Result device.

    Returns:
        A ``(size, size)`` tensor.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int (the kernel needs a centre pixel); got {size!r}")
    length = float(size) if length is None else float(length)
    if not (1.0 <= length <= size):
        raise ValueError(f"length must lie in [1, size={size}]; got {length}")
    n_points = 8 * size + 1 if n_points is None else int(n_points)
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2; got {n_points}")
    theta = math.radians(float(angle))
    centre = (size - 1) / 2
    half = (length - 1) / 2
    t = torch.linspace(-half, half, n_points, dtype=torch.float64, device=device)
    rows = centre - t * math.sin(theta)
    cols = centre + t * math.cos(theta)
    eps = 1e-9
    if bool(
        (rows < -eps).any()
        | (rows > size - 1 + eps).any()
        | (cols < -eps).any()
        | (cols > size - 1 + eps).any()
    ):
        raise ValueError(
            f"a segment of length {length} at angle {angle} leaves the {size}×{size} kernel; shorten it"
        )
    rows = rows.clamp(0, size - 1)
    cols = cols.clamp(0, size - 1)
    r0 = rows.floor().clamp(max=size - 2 if size > 1 else 0)
    c0 = cols.floor().clamp(max=size - 2 if size > 1 else 0)
    fr = rows - r0
    fc = cols - c0
    k = torch.zeros(size * size, dtype=torch.float64, device=device)
    r0l = r0.long()
    c0l = c0.long()
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            w = wr * wc
            idx = (r0l + dr).clamp(max=size - 1) * size + (c0l + dc).clamp(max=size - 1)
            k.index_add_(0, idx, w.clamp_min(0.0))
    k = k.reshape(size, size)
    return (k / k.sum()).to(dtype)
