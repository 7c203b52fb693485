"""deepinv interop: a genlab :class:`~genlab.inverse.operators.base.Operator` as deepinv physics, and back.

``to_deepinv(op)`` returns a ``deepinv.physics.LinearPhysics`` (or ``Physics`` for a non-linear operator) whose
``A``, ``A_adjoint``, ``A_dagger`` and ``prox_l2`` are genlab's ``A``, ``At``, ``pinv`` and ``solve_reg``
(closed forms where genlab has them, e.g. the SVD of inpainting, super-resolution and dense operators), with
deepinv's Gaussian noise model when ``sigma`` is given. ``from_deepinv(physics, x_shape=...)`` wraps any deepinv
physics as a genlab operator: ``A`` is ``physics.A``, ``At`` is ``physics.A_adjoint`` and the pseudo-inverse is
genlab's conjugate gradient on the normal equations (or ``physics.A_dagger`` with ``use_physics_dagger=True``).

deepinv is an optional dependency (``pip install deepinv``); it is imported when an adapter is built, never at
``import genlab``. deepinv works on images ``(B, C, H, W)``; genlab operators take any per-sample shape, so a
genlab operator on vectors is handed to deepinv with the same shapes (deepinv's linear algebra is shape-agnostic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from genlab.inverse.operators.base import Operator, as_shape

__all__ = ["DeepinvOperator", "from_deepinv", "to_deepinv"]


def _deepinv() -> Any:
    try:
        import deepinv
    except ImportError as err:
        raise ImportError("the deepinv adapters need deepinv: pip install deepinv") from err
    return deepinv


def to_deepinv(operator: Operator, *, sigma: float | None = None, x_shape: Sequence[int] | None = None) -> Any:
    """Wrap a genlab operator as deepinv physics.

    Args:
        operator: The genlab operator.
        sigma: Gaussian noise level of the measurements (``deepinv.physics.GaussianNoise(sigma)``); ``None``
            or ``0`` gives noiseless physics.
        x_shape: Per-sample input shape, needed only if the operator has none fixed and deepinv must build
            a signal (e.g. ``compute_norm``); ``A``/``A_adjoint`` take any batch.

    Returns:
        A ``deepinv.physics.LinearPhysics`` for a linear operator, else a ``deepinv.physics.Physics``.

    Raises:
        TypeError: If ``operator`` is not a genlab ``Operator``.
        ValueError: If ``sigma`` is negative or not finite.
        ImportError: If deepinv is not installed.
    """
    if not isinstance(operator, Operator):
        raise TypeError(f"to_deepinv: operator must be a genlab Operator; got {type(operator).__name__}")
    if sigma is not None and not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"to_deepinv: sigma must be a finite float >= 0; got {sigma!r}")
    dinv = _deepinv()
    noise = dinv.physics.GaussianNoise(sigma=float(sigma)) if sigma else dinv.physics.ZeroNoise()
    shape = as_shape(x_shape, name="x_shape") if x_shape is not None else operator.x_shape
    base = dinv.physics.LinearPhysics if operator.is_linear else dinv.physics.Physics

    class GenlabPhysics(base):  # type: ignore[misc, valid-type]
        """deepinv physics backed by a genlab operator (built by :func:`to_deepinv`)."""

        def __init__(self) -> None:
            kwargs: dict[str, Any] = {"noise_model": noise}
            if operator.is_linear:
                kwargs["img_size"] = shape
                kwargs["implicit_backward_solver"] = False
            super().__init__(**kwargs)
            self.operator = operator

        def A(self, x: Tensor, **kwargs: Any) -> Tensor:
            return self.operator.A(x)

        if operator.is_linear:

            def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
                return self.operator.At(y)

            def A_adjoint_A(self, x: Tensor, **kwargs: Any) -> Tensor:
                return self.operator.AtA(x)

            def A_A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
                return self.operator.AAt(y)

            def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
                return self.operator.pinv(y)

            def prox_l2(self, z: Tensor, y: Tensor, gamma: float | Tensor, **kwargs: Any) -> Tensor:
                # argmin_x ½‖Ax − y‖² + ‖x − z‖²/(2γ)  ⇔  (AᵀA + I/γ) x = Aᵀy + z/γ
                g = torch.as_tensor(gamma, dtype=z.dtype, device=z.device)
                rho = (1.0 / g).reshape(-1) if g.ndim else 1.0 / float(g)
                rho_b = rho.reshape(-1, *([1] * (z.ndim - 1))) if isinstance(rho, Tensor) else rho
                return self.operator.solve_reg(self.operator.At(y) + rho_b * z, rho)

    return GenlabPhysics()


class DeepinvOperator(Operator):
    """A deepinv physics as a genlab operator (built by :func:`from_deepinv`).

    ``A`` is ``physics.A`` (no noise: genlab's ``InverseProblem`` owns the noise model), ``At`` is
    ``physics.A_adjoint``; the pseudo-inverse and regularised solves are genlab's conjugate gradient on the
    normal equations unless ``use_physics_dagger`` hands ``pinv`` to ``physics.A_dagger``.

    Args:
        physics: A ``deepinv.physics.Physics`` (``LinearPhysics`` for a linear operator).
        x_shape: Per-sample input shape (e.g. ``(1, 28, 28)``); the output shape is found by one call of
            ``physics.A`` on zeros.
        use_physics_dagger: Use ``physics.A_dagger`` for :meth:`pinv`.
    """

    def __init__(self, physics: Any, *, x_shape: Sequence[int], use_physics_dagger: bool = False) -> None:
        super().__init__()
        dinv = _deepinv()
        if not isinstance(physics, dinv.physics.Physics):
            raise TypeError(f"from_deepinv: physics must be a deepinv Physics; got {type(physics).__name__}")
        self.physics = physics
        self.is_linear = isinstance(physics, dinv.physics.LinearPhysics)
        self.use_physics_dagger = bool(use_physics_dagger)
        shape = as_shape(x_shape, name="x_shape")
        with torch.no_grad():
            probe = physics.A(torch.zeros(1, *shape))
        if not isinstance(probe, Tensor):
            raise TypeError(
                f"from_deepinv: physics.A returns {type(probe).__name__}; only single-tensor measurements are "
                "supported (stacked physics return a TensorList)"
            )
        self._y_shape = tuple(probe.shape[1:])
        self._set_x_shape(shape)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self._x_shape is not None and tuple(x_shape) != self._x_shape:
            raise ValueError(
                f"{self.name}: the deepinv physics was wrapped for x_shape {self._x_shape}; got {tuple(x_shape)}"
            )
        return self._y_shape

    def _A(self, x: Tensor) -> Tensor:
        return self.physics.A(x)

    def _At(self, y: Tensor) -> Tensor:
        return self.physics.A_adjoint(y)

    def _pinv(
        self, y: Tensor, x_shape: tuple[int, ...], *, rcond: float, tol: float, max_iter: int
    ) -> Tensor:
        if self.use_physics_dagger:
            return self.physics.A_dagger(y)
        return super()._pinv(y, x_shape, rcond=rcond, tol=tol, max_iter=max_iter)


def from_deepinv(physics: Any, *, x_shape: Sequence[int], use_physics_dagger: bool = False) -> DeepinvOperator:
    """Wrap deepinv physics as a genlab operator (see :class:`DeepinvOperator`)."""
    return DeepinvOperator(physics, x_shape=x_shape, use_physics_dagger=use_physics_dagger)
