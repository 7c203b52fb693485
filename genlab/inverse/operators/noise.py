"""Noise models ``y = A(x) + n`` for the measurement."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.utils import randn_like_per_sample

__all__ = ["GaussianNoise"]


@dataclass(frozen=True)
class GaussianNoise:
    """Additive white Gaussian noise ``n ~ N(0, σ²I)``.

    DPS (Chung et al., ICLR 2023) uses ``σ = 0.05`` for images in ``[-1, 1]``.

    Attributes:
        sigma: Standard deviation ``σ ≥ 0`` (``0`` gives noiseless measurements; the likelihood then
            does not exist).
    """

    sigma: float

    def __post_init__(self) -> None:
        s = self.sigma
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s >= 0):
            raise ValueError(f"GaussianNoise: sigma must be a finite float >= 0; got {s!r}")

    def sample(self, y: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Noisy measurement ``y + σ ε`` with ``ε`` drawn per sample (batch-size invariant under a generator).

        Args:
            y: Clean measurement ``A(x)``, shape ``(B, ...)``.
            generator: Source of randomness.

        Returns:
            A tensor shaped like ``y``.
        """
        if self.sigma == 0:
            return y.clone()
        return y + self.sigma * randn_like_per_sample(y, generator=generator)

    def __call__(self, y: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Same as :meth:`sample`."""
        return self.sample(y, generator=generator)

    def log_likelihood(self, y: Tensor, y_pred: Tensor) -> Tensor:
        """``log N(y; y_pred, σ²I) = −‖y − y_pred‖²/(2σ²) − (m/2)·log(2πσ²)`` per sample.

        Args:
            y: Observed measurements, shape ``(B, ...)``.
            y_pred: Predicted clean measurements ``A(x)``, same shape.

        Returns:
            A ``(B,)`` tensor.
        """
        if self.sigma == 0:
            raise ValueError("GaussianNoise.log_likelihood: sigma = 0 has no density; use sigma > 0")
        if y.shape != y_pred.shape:
            raise ValueError(
                f"log_likelihood: y {tuple(y.shape)} and y_pred {tuple(y_pred.shape)} must match"
            )
        if y.ndim < 1:
            raise ValueError("log_likelihood: y must be batch-first with shape (B, ...)")
        sq = (y - y_pred).reshape(y.shape[0], -1).pow(2).sum(dim=1)
        m = y[0].numel()
        return -sq / (2 * self.sigma**2) - 0.5 * m * math.log(2 * math.pi * self.sigma**2)
