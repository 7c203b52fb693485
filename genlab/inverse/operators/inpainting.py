"""Inpainting: observe the pixels where a mask is 1, ``A x = m ⊙ x`` (the measurement keeps the shape of ``x``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.inverse.operators.base import SVD, Operator, as_shape
from genlab.utils import append_dims, schedule_dtype

__all__ = ["Inpainting"]


class Inpainting(Operator):
    """Masking operator ``A x = m ⊙ x`` with ``m ∈ [0, 1]`` (usually binary), ``y`` kept in x-shape.

    ``A`` is diagonal, so every solver is a closed form (deepinv ``Inpainting``; the PnP-HVAE mask solution
    ``x = (m y + λ μ)/(m + λ)``): ``Aᵀ = A``, ``A†y = y/m`` where ``m > 0`` (0 elsewhere),
    ``(AᵀA + ρI)⁻¹b = b/(m² + ρ)``, SVD with ``U = V = I`` and ``s = m``.

    Args:
        mask: Per-sample mask (e.g. ``(C, H, W)``), boolean or floating with values in ``[0, 1]``; 1 means
            observed. Its shape fixes ``x_shape``.
    """

    has_svd = True

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a torch.Tensor; got {type(mask).__name__}")
        if mask.dtype == torch.bool:
            mask = mask.to(torch.get_default_dtype())
        if not mask.is_floating_point():
            raise TypeError(f"mask must be boolean or floating-point; got dtype {mask.dtype}")
        if mask.ndim == 0:
            raise ValueError("mask must have the per-sample shape of x, e.g. (C, H, W); got a scalar")
        if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any()) or bool((mask > 1).any()):
            raise ValueError("mask values must lie in [0, 1] (1 = observed, 0 = missing)")
        self.register_buffer("mask", mask.detach().clone())
        self._set_x_shape(tuple(mask.shape))

    @classmethod
    def random(
        cls,
        shape: Sequence[int],
        p: float,
        *,
        generator: torch.Generator | None = None,
        per_channel: bool = False,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Inpainting:
        """Random mask: each pixel is missing independently with probability ``p``.

        DPS (Chung et al., ICLR 2023) draws ``p`` uniformly in ``[0.3, 0.7]`` per image.

        Args:
            shape: Per-sample shape, e.g. ``(C, H, W)`` or ``(d,)``.
            p: Probability that a pixel is missing, in ``[0, 1]``.
            generator: Source of randomness (the mask is drawn on its device).
            per_channel: For ``(C, H, W)`` shapes, draw each channel independently instead of masking whole
                pixels (all channels at once).
            dtype: Mask dtype.
            device: Mask device.

        Returns:
            An :class:`Inpainting` operator.
        """
        shape = as_shape(shape, name="shape")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= float(p) <= 1.0):
            raise ValueError(f"p (probability that a pixel is missing) must be a float in [0, 1]; got {p!r}")
        draw_shape = (1, *shape[1:]) if (len(shape) >= 3 and not per_channel) else shape
        gen_device = generator.device if generator is not None else device
        u = torch.rand(draw_shape, generator=generator, device=gen_device, dtype=torch.float64)
        mask = (u >= float(p)).to(dtype).expand(shape).contiguous()
        return cls(mask.to(device) if device is not None else mask)

    @classmethod
    def box(
        cls,
        shape: Sequence[int],
        box: Sequence[int],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Inpainting:
        """Box mask: the rectangle ``box = (top, left, height, width)`` is missing in every channel.

        Args:
            shape: Per-sample shape ``(..., H, W)``.
            box: ``(top, left, height, width)`` in pixels, inside the image.
            dtype: Mask dtype.
            device: Mask device.

        Returns:
            An :class:`Inpainting` operator.
        """
        shape = as_shape(shape, name="shape")
        if len(shape) < 2:
            raise ValueError(f"shape must end with (H, W) for a box mask; got {shape}")
        if len(box) != 4 or not all(isinstance(b, int) and not isinstance(b, bool) for b in box):
            raise ValueError(f"box must be four ints (top, left, height, width); got {box!r}")
        top, left, height, width = box
        img_h, img_w = shape[-2:]
        if top < 0 or left < 0 or height < 1 or width < 1 or top + height > img_h or left + width > img_w:
            raise ValueError(
                f"box {tuple(box)} (top, left, height, width) must lie inside the {img_h}×{img_w} image"
            )
        mask = torch.ones(shape, dtype=dtype, device=device)
        mask[..., top : top + height, left : left + width] = 0
        return cls(mask)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(x_shape) != tuple(self.mask.shape):
            raise ValueError(
                f"the mask has shape {tuple(self.mask.shape)}; inputs must match it, got {tuple(x_shape)}"
            )
        return tuple(x_shape)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.output_shape(tuple(y_shape))

    def _m(self, like: Tensor) -> Tensor:
        return self.mask.to(dtype=like.dtype, device=like.device)

    def _A(self, x: Tensor) -> Tensor:
        return self._m(x) * x

    def _At(self, y: Tensor) -> Tensor:
        return self._m(y) * y

    def _pinv(
        self, y: Tensor, x_shape: tuple[int, ...], *, rcond: float, tol: float, max_iter: int
    ) -> Tensor:
        m = self._m(y)
        keep = m > rcond * m.max()
        return torch.where(keep, y / torch.where(keep, m, torch.ones_like(m)), torch.zeros_like(y))

    def _solve_reg(self, b: Tensor, rho: Tensor, *, x0: Tensor | None, tol: float, max_iter: int) -> Tensor:
        return b / (self._m(b) ** 2 + append_dims(rho, b.ndim))

    def _norm(self, x_shape: tuple[int, ...]) -> float:
        return float(self.mask.max())

    def _svd(self, x_shape: tuple[int, ...]) -> SVD:
        s = self.mask.to(schedule_dtype(self.mask.device)).reshape(-1)
        n = math.prod(x_shape)

        def flat(t: Tensor) -> Tensor:
            return t.reshape(t.shape[0], n)

        def unflat(c: Tensor) -> Tensor:
            return c.reshape(c.shape[0], *x_shape)

        return SVD(s=s, U=unflat, Ut=flat, V=unflat, Vt=flat, x_shape=x_shape, y_shape=x_shape)
