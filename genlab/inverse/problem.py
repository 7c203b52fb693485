"""The inverse problem ``y = A(x) + n``, ``n ~ N(0, σ²I)``: an operator, a measurement and its noise level."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.inverse.operators import GaussianNoise, Operator, as_shape

__all__ = ["InverseProblem"]


@dataclass(eq=False)
class InverseProblem:
    """A measurement ``y = A(x) + σ·n`` of an unknown ``x``.

    ``y`` is batch-first: one measurement ``(1, *y_shape)`` (every posterior sample explains the same ``y``) or
    one per sample ``(n, *y_shape)``. The per-sample shape of ``x`` is the operator's ``x_shape`` when it has
    one, otherwise it is inferred from ``y`` (``op.input_shape``) or must be given.

    Args:
        op: The forward operator (linear or not), from :mod:`genlab.inverse.operators`.
        y: Measurements, shape ``(1 | n, *y_shape)``.
        sigma: Noise standard deviation ``σ ≥ 0`` in the units of ``y`` (DPS uses 0.05 for images in [-1, 1]).
        x_shape: Per-sample shape of ``x`` when neither the operator nor ``y`` determines it.
    """

    op: Operator
    y: Tensor
    sigma: float = 0.0
    x_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.op, Operator):
            raise TypeError(
                f"op must be a genlab.inverse.operators.Operator, got {type(self.op).__name__}; wrap a matrix "
                "with DenseOperator(matrix)"
            )
        if not isinstance(self.y, Tensor) or not self.y.is_floating_point():
            raise TypeError(f"y must be a floating-point tensor, got {type(self.y).__name__}")
        if self.y.ndim < 2:
            raise ValueError(
                f"y must be batch-first with shape (1, *y_shape) or (n, *y_shape); got {tuple(self.y.shape)}. "
                "Add the batch dimension, e.g. y[None]."
            )
        if not bool(torch.isfinite(self.y).all()):
            raise ValueError("y contains NaN or infinite values")
        s = self.sigma
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s >= 0):
            raise ValueError(f"sigma must be a finite float >= 0 (noise std in units of y); got {s!r}")
        self.sigma = float(s)
        shape = self._resolve_x_shape(self.x_shape)
        y_expected = self.op.output_shape(shape)
        if tuple(self.y.shape[1:]) != tuple(y_expected):
            raise ValueError(
                f"y has per-sample shape {tuple(self.y.shape[1:])} but {self.op.name} maps x of shape {shape} to "
                f"{tuple(y_expected)}"
            )
        self.x_shape = shape

    def _resolve_x_shape(self, x_shape: Sequence[int] | None) -> tuple[int, ...]:
        if x_shape is not None:
            return self.op.resolve_x_shape(as_shape(x_shape, name="x_shape"))
        if self.op.x_shape is not None:
            return self.op.x_shape
        try:
            return tuple(self.op.input_shape(tuple(self.y.shape[1:])))
        except ValueError as err:
            raise ValueError(
                f"cannot infer the shape of x from y for {self.op.name} ({err}); pass x_shape=(C, H, W)"
            ) from None

    # ------------------------------------------------------------------ construction
    @classmethod
    def simulate(
        cls,
        op: Operator,
        x: Tensor,
        sigma: float,
        *,
        generator: torch.Generator | None = None,
    ) -> InverseProblem:
        """Measure a known ``x``: ``y = A(x) + σ·n`` with noise drawn per sample.

        Args:
            op: Forward operator.
            x: Ground truth ``(B, *x_shape)``.
            sigma: Noise std.
            generator: Generator of the measurement noise.

        Returns:
            The problem (``y`` has the batch size of ``x``).
        """
        with torch.no_grad():
            y = GaussianNoise(float(sigma)).sample(op.A(x), generator=generator)
        return cls(op, y, float(sigma), x_shape=tuple(x.shape[1:]))

    # ------------------------------------------------------------------ properties
    @property
    def noise(self) -> GaussianNoise:
        """The noise model ``N(0, σ²I)``."""
        return GaussianNoise(self.sigma)

    @property
    def y_shape(self) -> tuple[int, ...]:
        """Per-sample shape of ``y``."""
        return tuple(self.y.shape[1:])

    @property
    def batch(self) -> int:
        """Number of measurements in ``y`` (1 when every sample shares one)."""
        return int(self.y.shape[0])

    @property
    def is_linear(self) -> bool:
        """Whether the operator is linear."""
        return bool(self.op.is_linear)

    def expand(self, n: int) -> InverseProblem:
        """The same problem with ``y`` repeated to ``n`` rows (a batch of ``n`` posterior samples).

        Args:
            n: Number of samples.

        Returns:
            A problem whose ``y`` has shape ``(n, *y_shape)``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if self.batch == n:
            return self
        if self.batch != 1:
            raise ValueError(
                f"y holds {self.batch} measurements; it can serve n_samples=1 per measurement batch only as "
                f"n_samples={self.batch}, got {n}. Pass one measurement (y of shape (1, ...)) to draw many samples"
            )
        y = self.y.expand(n, *self.y.shape[1:]).contiguous()
        return InverseProblem(self.op, y, self.sigma, x_shape=self.x_shape)

    # ------------------------------------------------------------------ data terms
    def residual(self, x: Tensor) -> Tensor:
        """``y − A(x)`` (``y`` broadcast when it holds one measurement).

        Args:
            x: Candidates ``(B, *x_shape)``.

        Returns:
            Residuals ``(B, *y_shape)``.
        """
        ax = self.op.A(x)
        y = self.y if self.batch == x.shape[0] else self.y.expand_as(ax)
        return y.to(ax) - ax

    def residual_norm(self, x: Tensor) -> Tensor:
        """``‖y − A(x)‖₂`` per sample, shape ``(B,)``."""
        return self.residual(x).flatten(1).norm(dim=1)

    def data_fidelity(self, x: Tensor) -> Tensor:
        """Negative log-likelihood up to a constant, ``‖y − A(x)‖² / (2σ²)`` per sample.

        Raises:
            ValueError: for noiseless problems (σ = 0), where the likelihood has no density.
        """
        if self.sigma == 0:
            raise ValueError("data_fidelity needs sigma > 0 (a noiseless measurement has no Gaussian likelihood)")
        return self.residual(x).flatten(1).pow(2).sum(1) / (2 * self.sigma**2)

    def __repr__(self) -> str:
        return (f"InverseProblem(op={self.op.name}, y={tuple(self.y.shape)}, sigma={self.sigma:g}, "
                f"x_shape={self.x_shape})")
