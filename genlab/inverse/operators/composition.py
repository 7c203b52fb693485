"""Composition of operators: ``A = A2 ∘ A1`` with adjoint ``A1ᵀ A2ᵀ``."""

from __future__ import annotations

from torch import Tensor

from genlab.inverse.operators.base import Operator

__all__ = ["ComposedOperator", "compose"]


class ComposedOperator(Operator):
    """``A(x) = A2(A1(x))``; linear when both parts are, with ``Aᵀ = A1ᵀ A2ᵀ``.

    No closed forms survive composition in general, so ``pinv``/``solve_reg`` use conjugate gradient and
    ``norm`` power iteration; a non-linear part makes the whole operator non-linear (gradients by autograd).
    deepinv builds the same object with ``physics2 * physics1``.

    Args:
        outer: ``A2``, applied second.
        inner: ``A1``, applied first.
    """

    def __init__(self, outer: Operator, inner: Operator) -> None:
        super().__init__()
        for name, op in (("outer", outer), ("inner", inner)):
            if not isinstance(op, Operator):
                raise TypeError(f"compose: {name} must be an Operator; got {type(op).__name__}")
        self.outer = outer
        self.inner = inner
        self.is_linear = outer.is_linear and inner.is_linear
        x_shape = inner.x_shape
        if x_shape is None and outer.x_shape is not None and inner.is_linear:
            try:
                x_shape = inner.input_shape(outer.x_shape)
            except ValueError:
                x_shape = None
        if inner.y_shape is not None and outer.x_shape is not None and inner.y_shape != outer.x_shape:
            raise ValueError(
                f"compose: {inner.name} produces per-sample shape {inner.y_shape} but {outer.name} expects "
                f"{outer.x_shape}"
            )
        self._set_x_shape(x_shape)

    @property
    def name(self) -> str:
        return f"({self.outer.name} ∘ {self.inner.name})"

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        mid = self.inner.output_shape(tuple(x_shape))
        if self.outer.x_shape is not None and mid != self.outer.x_shape:
            raise ValueError(
                f"{self.inner.name} gives per-sample shape {mid} but {self.outer.name} expects {self.outer.x_shape}"
            )
        return self.outer.output_shape(mid)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.inner.input_shape(self.outer.input_shape(tuple(y_shape)))

    def _A(self, x: Tensor) -> Tensor:
        return self.outer._A(self.inner._A(x))

    def _At(self, y: Tensor) -> Tensor:
        return self.inner._At(self.outer._At(y))


def compose(op2: Operator, op1: Operator) -> ComposedOperator:
    """The operator ``A2 ∘ A1`` (``op1`` first); ``op2 @ op1`` is the same.

    Args:
        op2: Applied second.
        op1: Applied first.

    Returns:
        A :class:`ComposedOperator`.
    """
    return ComposedOperator(op2, op1)
