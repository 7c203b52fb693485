"""Deterministic degradations ``x0 = m(x1)`` used to build paired (source, target) data.

These are the maps of data-dependent couplings (Albergo et al., "Stochastic interpolants with data-dependent
couplings", ICML 2024, §3: ``x0 = m(x1) + σζ``) and of the image-to-image bridges (DDBM, I2SB): masking
(inpainting), average-pool then upsample (super-resolution) and Sobel edge maps (edges → image). All act on
``(N, C, H, W)`` batches in ``[-1, 1]`` and keep device and dtype.

Mask convention: a mask is a float tensor of shape ``(N, 1, H, W)`` with **1 where a pixel is observed/kept**
and 0 where it is removed; :func:`apply_mask` writes ``fill`` in the removed pixels.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "apply_mask",
    "box_mask",
    "pixel_mask",
    "pool_upsample",
    "sobel_edges",
]


def _check_images(x: Tensor, name: str, fn: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{fn}: {name} must have shape (N, C, H, W); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: {name} must be floating point; got {x.dtype}")


def _draw_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    """Device the random draws happen on: the generator's, else the requested one, else the CPU."""
    if generator is not None:
        return generator.device
    return torch.device(device if device is not None else "cpu")


def box_mask(
    n: int,
    height: int,
    width: int,
    *,
    box_size: int | tuple[int, int],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Masks that remove one axis-aligned box per image at a uniformly random position.

    Args:
        n: Number of masks.
        height: Image height.
        width: Image width.
        box_size: Box side, or ``(box_height, box_width)``; must fit in the image.
        generator: Optional generator for the box positions (drawn on its device).
        device: Device of the result (default: the generator's device, else CPU).
        dtype: Dtype of the result.

    Returns:
        ``(n, 1, height, width)`` tensor, 0 inside the box and 1 elsewhere.
    """
    bh, bw = (box_size, box_size) if isinstance(box_size, int) else tuple(box_size)
    if not (1 <= bh <= height and 1 <= bw <= width):
        raise ValueError(f"box_mask: box_size {(bh, bw)} must be >= 1 and fit in the image {(height, width)}")
    draw = _draw_device(generator, device)
    top = torch.randint(0, height - bh + 1, (n,), generator=generator, device=draw)
    left = torch.randint(0, width - bw + 1, (n,), generator=generator, device=draw)
    rows = torch.arange(height, device=draw).view(1, height, 1)
    cols = torch.arange(width, device=draw).view(1, 1, width)
    inside_r = (rows >= top.view(n, 1, 1)) & (rows < (top + bh).view(n, 1, 1))
    inside_c = (cols >= left.view(n, 1, 1)) & (cols < (left + bw).view(n, 1, 1))
    mask = (~(inside_r & inside_c)).unsqueeze(1)
    return mask.to(device=device if device is not None else draw, dtype=dtype)


def pixel_mask(
    n: int,
    height: int,
    width: int,
    *,
    drop_prob: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Masks that remove each pixel independently with probability ``drop_prob``.

    Args:
        n: Number of masks.
        height: Image height.
        width: Image width.
        drop_prob: Probability that a pixel is removed, in ``[0, 1]``.
        generator: Optional generator (drawn on its device).
        device: Device of the result (default: the generator's device, else CPU).
        dtype: Dtype of the result.

    Returns:
        ``(n, 1, height, width)`` tensor of 0/1 values (1 = kept).
    """
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"pixel_mask: drop_prob must be in [0, 1]; got {drop_prob!r}")
    draw = _draw_device(generator, device)
    u = torch.rand(n, 1, height, width, generator=generator, device=draw, dtype=torch.float64)
    return (u >= drop_prob).to(device=device if device is not None else draw, dtype=dtype)


def apply_mask(x: Tensor, mask: Tensor, *, fill: float = 0.0) -> Tensor:
    """Keep the pixels where ``mask == 1`` and write ``fill`` elsewhere: ``m ⊙ x + (1 − m)·fill``.

    Args:
        x: Images ``(N, C, H, W)``.
        mask: ``(N, 1, H, W)`` or ``(N, C, H, W)`` 0/1 mask (1 = kept).
        fill: Value of the removed pixels (0, the middle of ``[-1, 1]``, by default).

    Returns:
        Masked images, same shape/dtype/device as ``x``.
    """
    _check_images(x, "x", "apply_mask")
    if not isinstance(mask, Tensor):
        raise TypeError(f"apply_mask: mask must be a torch.Tensor; got {type(mask).__name__}")
    channels_ok = mask.ndim == 4 and mask.shape[1] in (1, x.shape[1])
    if not channels_ok or mask.shape[0] != x.shape[0] or mask.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"apply_mask: mask must have shape (N, 1 or C, H, W) matching x {tuple(x.shape)}; got {tuple(mask.shape)}"
        )
    m = mask.to(device=x.device, dtype=x.dtype)
    return m * x + (1.0 - m) * fill


def pool_upsample(x: Tensor, factor: int, *, mode: Literal["nearest", "bilinear"] = "nearest") -> Tensor:
    """Low-resolution version at full size: ``factor×factor`` average pooling, then upsampling back.

    With ``mode="nearest"`` every ``factor×factor`` block is constant and equal to the block mean of ``x``
    (the super-resolution operator ``A`` followed by its pseudo-inverse-like replication). ``"bilinear"``
    uses ``align_corners=False``.

    Args:
        x: Images ``(N, C, H, W)`` with ``H`` and ``W`` divisible by ``factor``.
        factor: Integer downsampling factor ``>= 1``.
        mode: Upsampling interpolation.

    Returns:
        ``(N, C, H, W)`` tensor.
    """
    _check_images(x, "x", "pool_upsample")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"pool_upsample: factor must be a positive int; got {factor!r}")
    if x.shape[2] % factor or x.shape[3] % factor:
        raise ValueError(f"pool_upsample: H, W {tuple(x.shape[2:])} must be divisible by factor={factor}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"pool_upsample: mode must be 'nearest' or 'bilinear'; got {mode!r}")
    low = F.avg_pool2d(x, kernel_size=factor, stride=factor)
    if mode == "nearest":
        return F.interpolate(low, scale_factor=factor, mode="nearest")
    return F.interpolate(low, scale_factor=factor, mode="bilinear", align_corners=False)


def sobel_edges(x: Tensor) -> Tensor:
    """Sobel gradient magnitude, mapped to ``[-1, 1]`` (−1 = flat, +1 = strongest possible edge).

    With ``u = (x + 1)/2 ∈ [0, 1]``, ``g_x = (K ⋆ u)/4`` and ``g_y = (Kᵀ ⋆ u)/4`` for the Sobel kernel
    ``K = [[−1, 0, 1], [−2, 0, 2], [−1, 0, 1]]`` with replicate padding (so ``|g_x|, |g_y| ≤ 1``), the result
    is ``2·sqrt(g_x² + g_y²)/√2 − 1``, computed per channel.

    Args:
        x: Images ``(N, C, H, W)`` in ``[-1, 1]``.

    Returns:
        Edge maps of the same shape, in ``[-1, 1]``.
    """
    _check_images(x, "x", "sobel_edges")
    n, c, h, w = x.shape
    u = ((x + 1.0) / 2.0).reshape(n * c, 1, h, w)
    k = (
        torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
        / 4.0
    )
    kernels = torch.stack([k, k.t()]).unsqueeze(1)  # (2, 1, 3, 3): d/dcol, d/drow
    g = F.conv2d(F.pad(u, (1, 1, 1, 1), mode="replicate"), kernels)
    mag = torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2) / 2.0**0.5
    return (2.0 * mag - 1.0).reshape(n, c, h, w)
