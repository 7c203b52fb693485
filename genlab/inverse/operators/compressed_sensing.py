"""Compressed sensing: a random Gaussian measurement matrix with entries ``N(0, 1/m)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from genlab.inverse.operators.base import as_shape
from genlab.inverse.operators.dense import DenseOperator

__all__ = ["CompressedSensing"]


class CompressedSensing(DenseOperator):
    """``A x = Φ x`` with ``Φ ∈ R^{m×n}``, ``Φ_ij ~ N(0, 1/m)`` i.i.d., so ``E‖Φx‖² = ‖x‖²``.

    Same scaling as deepinv's ``CompressedSensing`` (Gaussian matrix divided by ``√m``); everything else
    (closed-form pinv, ``solve_reg``, SVD) is inherited from :class:`DenseOperator`.

    Args:
        m: Number of measurements.
        d: Signal size: an int ``n`` (vectors ``(B, n)``) or a per-sample shape such as ``(C, H, W)``
            (flattened, ``n = prod(d)``).
        generator: Source of randomness (the matrix is drawn on its device, in float64, then cast).
        dtype: Matrix dtype.
        device: Matrix device.
    """

    def __init__(
        self,
        m: int,
        d: int | Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"m (number of measurements) must be an int >= 1; got {m!r}")
        if isinstance(d, int) and not isinstance(d, bool):
            if d < 1:
                raise ValueError(f"d must be a positive int or a shape; got {d!r}")
            x_shape: tuple[int, ...] = (d,)
        else:
            x_shape = as_shape(d, name="d")
        n = math.prod(x_shape)
        gen_device = generator.device if generator is not None else device
        phi = torch.randn(m, n, generator=generator, device=gen_device, dtype=torch.float64) / math.sqrt(m)
        super().__init__(phi.to(dtype=dtype, device=device), x_shape=x_shape)
