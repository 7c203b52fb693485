"""Non-linear measurement operators (``is_linear = False``): only ``A`` and ``A_vjp`` are defined."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.inverse.operators.base import Operator

__all__ = ["PhaseRetrieval"]


class PhaseRetrieval(Operator):
    """Fourier phase retrieval: ``A x = |F(pad(x))|``, the magnitude of the 2-D DFT of the zero-padded image.

    This is the DPS phase-retrieval task (Chung et al., ICLR 2023, §4; ``guided_diffusion/measurements.py``,
    ``PhaseRetrievalOperator``, and ``fft2_m`` = fastMRI's centred ``fft2c_new`` with ``norm="ortho"``): the
    image is zero-padded by ``int(oversampling/8 · size)`` pixels on each side (DPS hard-codes ``size = 256``)
    and the measurement is ``|fftshift(fft2(ifftshift(x_pad)))|``. Here the input ``ifftshift`` is omitted (a
    circular shift only changes phases, so the magnitudes are identical). ``norm="ortho"`` (DPS) makes
    ``‖A x‖ = ‖x‖``; ``norm="backward"`` is the unnormalised DFT (``√(H_pad·W_pad)`` times larger). Each channel
    is transformed separately. ``A(−x) = A(x)``: the problem has the usual trivial ambiguities (sign, flip,
    translation).

    Gradients come from autograd (:meth:`~Operator.A_vjp`); ``|·|`` is not differentiable where a Fourier
    coefficient vanishes (autograd then uses the subgradient 0).

    Args:
        oversampling: DPS's oversampling ratio (``2.0`` in its configs), ``≥ 0``.
        norm: ``"ortho"`` (DPS) or ``"backward"`` (unnormalised).
        x_shape: Optional fixed per-sample input shape ``(C, H, W)``.
    """

    is_linear = False

    def __init__(
        self,
        *,
        oversampling: float = 2.0,
        norm: Literal["ortho", "backward"] = "ortho",
        x_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if (
            isinstance(oversampling, bool)
            or not isinstance(oversampling, (int, float))
            or not (math.isfinite(oversampling) and oversampling >= 0)
        ):
            raise ValueError(f"oversampling must be a finite float >= 0; got {oversampling!r}")
        if norm not in ("ortho", "backward"):
            raise ValueError(f"norm must be 'ortho' or 'backward'; got {norm!r}")
        self.oversampling = float(oversampling)
        self.norm_mode = norm
        self._set_x_shape(x_shape)

    def pads(self, height: int, width: int) -> tuple[int, int]:
        """Zero padding ``(p_h, p_w)`` added on each side of an ``height × width`` image."""
        return int(self.oversampling / 8.0 * height), int(self.oversampling / 8.0 * width)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(x_shape) != 3:
            raise ValueError(
                f"{self.name} acts on images; the per-sample shape must be (C, H, W), got {x_shape}"
            )
        channels, height, width = x_shape
        p_h, p_w = self.pads(height, width)
        return channels, height + 2 * p_h, width + 2 * p_w

    def _A(self, x: Tensor) -> Tensor:
        p_h, p_w = self.pads(x.shape[-2], x.shape[-1])
        padded = F.pad(x, (p_w, p_w, p_h, p_h))
        dims = (-2, -1)
        # DPS also applies ifftshift to the input first; a circular shift only changes phases, so it is omitted
        spec = torch.fft.fft2(padded, norm=self.norm_mode)
        return torch.fft.fftshift(spec, dim=dims).abs()
