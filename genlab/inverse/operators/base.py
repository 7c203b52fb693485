"""The measurement-operator contract shared by every forward model ``y = A(x) + n``.

Conventions (deepinv-like maths names, batch first):

- ``x`` has shape ``(B, *x_shape)`` (images ``(B, C, H, W)``, vectors ``(B, d)``); ``y = A(x)`` has shape
  ``(B, *y_shape)``. An operator may fix ``x_shape`` at construction or accept any shape its structure allows
  (a blur works on any image at least as large as its kernel); methods that need a concrete shape
  (``dense``, ``svd``, ``norm``) then take ``x_shape=``.
- Linear operators provide ``A``, ``At`` (adjoint), ``pinv`` (Moore–Penrose), ``solve_reg`` for
  ``(AᵀA + ρI)x = b``, ``prox_l2`` and, where it has a closed form, ``svd``. Closed forms are used when they
  exist; everything else falls back to conjugate gradient (:func:`~genlab.inverse.operators.linalg.conjugate_gradient`).
- Non-linear operators (``is_linear = False``) provide ``A`` and ``A_vjp`` (through autograd); the linear-only
  methods raise a ``TypeError`` that says so.
- Operators are ``nn.Module``\\ s: buffers (masks, kernels, matrices) move with ``.to()``. Every method casts
  them to the dtype/device of its input, so a float32 operator applied to a float64 tensor computes in float64.
  Spectral quantities (singular values, bases) are computed in float64 where the device allows.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genlab.inverse.operators.linalg import conjugate_gradient, lanczos_max_eigenvalue
from genlab.utils import append_dims, schedule_dtype

__all__ = ["SVD", "Operator", "as_shape"]


def as_shape(shape: Sequence[int] | torch.Size, *, name: str) -> tuple[int, ...]:
    """Validate a per-sample shape (a non-empty sequence of positive ints) and return it as a tuple.

    Args:
        shape: The shape to check.
        name: Argument name used in error messages.

    Returns:
        The shape as a tuple of Python ints.
    """
    if isinstance(shape, (int, Tensor)) or not isinstance(shape, (Sequence, torch.Size)):
        raise TypeError(f"{name} must be a sequence of positive ints such as (C, H, W); got {shape!r}")
    out = tuple(shape)
    if len(out) == 0 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in out):
        raise ValueError(
            f"{name} must be a non-empty sequence of positive ints such as (C, H, W); got {shape!r}"
        )
    return out


@dataclass(frozen=True)
class SVD:
    """Singular value decomposition ``A = U diag(s) Vᵀ`` in flat spectral coordinates.

    The spectral space has ``n = prod(x_shape)`` coordinates. ``V`` is orthogonal on x-space (``Vt`` maps an
    input to all ``n`` coefficients, ``V`` maps them back); ``s`` holds one non-negative singular value per
    coordinate, zero on the null space of ``A`` (so null-space coordinates are still available, as DDRM
    needs). ``U`` is a partial isometry from spectral space to y-space and ``Ut`` its adjoint:
    ``Ut(U(c)) = c`` on every coordinate with ``s > 0``. ``s`` is not necessarily sorted.

    Attributes:
        s: Singular values, shape ``(n,)``.
        U: ``(B, n) -> (B, *y_shape)``.
        Ut: ``(B, *y_shape) -> (B, n)``.
        V: ``(B, n) -> (B, *x_shape)``.
        Vt: ``(B, *x_shape) -> (B, n)``.
        x_shape: Per-sample input shape.
        y_shape: Per-sample output shape.
    """

    s: Tensor
    U: Callable[[Tensor], Tensor]
    Ut: Callable[[Tensor], Tensor]
    V: Callable[[Tensor], Tensor]
    Vt: Callable[[Tensor], Tensor]
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]

    def apply(self, x: Tensor) -> Tensor:
        """Evaluate ``U(s · Vᵀx)``, which equals ``A x``.

        Args:
            x: Input of shape ``(B, *x_shape)``.

        Returns:
            ``A x`` of shape ``(B, *y_shape)``.
        """
        return self.U(self.s.to(x) * self.Vt(x))


class Operator(nn.Module, ABC):
    """Base class of measurement operators ``A`` in ``y = A(x) + n``.

    Subclasses implement :meth:`output_shape` and the unchecked ``_A`` (and ``_At`` when linear); they may
    override ``_pinv``, ``_solve_reg``, ``_svd`` and ``_norm`` with closed forms. The public methods validate
    shapes first and raise a ``ValueError`` that names the argument, the expected shape and the fix.

    Attributes:
        is_linear: Whether ``A`` is linear (enables ``At``, ``pinv``, ``solve_reg``, ``prox_l2``, ``dense``).
        has_svd: Whether :meth:`svd` has a closed form.
    """

    is_linear: bool = True
    has_svd: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._x_shape: tuple[int, ...] | None = None

    # ----------------------------------------------------------------------------------------------- shapes
    def _set_x_shape(self, x_shape: Sequence[int] | None) -> None:
        """Fix the per-sample input shape (validated through :meth:`output_shape`); ``None`` leaves it free."""
        if x_shape is None:
            self._x_shape = None
            return
        shape = as_shape(x_shape, name="x_shape")
        self.output_shape(shape)
        self._x_shape = shape

    @property
    def name(self) -> str:
        """Class name used in messages."""
        return type(self).__name__

    @property
    def x_shape(self) -> tuple[int, ...] | None:
        """Per-sample input shape, or ``None`` when the operator accepts any shape its structure allows."""
        return self._x_shape

    @property
    def y_shape(self) -> tuple[int, ...] | None:
        """Per-sample output shape, or ``None`` when ``x_shape`` is not fixed."""
        return None if self._x_shape is None else self.output_shape(self._x_shape)

    @abstractmethod
    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape of ``A(x)`` for an input of per-sample shape ``x_shape``.

        Raises:
            ValueError: If the operator cannot act on inputs of that shape (the message says why).
        """

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample input shape that produces outputs of shape ``y_shape`` (used by ``At`` and ``pinv``).

        Raises:
            ValueError: If the shape cannot be inferred or does not match.
        """
        if self._x_shape is not None:
            expected = self.output_shape(self._x_shape)
            if tuple(y_shape) != expected:
                raise ValueError(
                    f"{self.name}: measurements must have per-sample shape {expected}; got {tuple(y_shape)}"
                )
            return self._x_shape
        raise ValueError(
            f"{self.name} cannot infer the input shape from measurements of shape {tuple(y_shape)}; "
            "construct it with x_shape=..."
        )

    def resolve_x_shape(self, x_shape: Sequence[int] | None) -> tuple[int, ...]:
        """Return ``x_shape`` (validated) or the operator's own; raise if neither is known."""
        if x_shape is not None:
            shape = as_shape(x_shape, name="x_shape")
            if self._x_shape is not None and shape != self._x_shape:
                raise ValueError(f"{self.name}: x_shape={shape} differs from the operator's {self._x_shape}")
            self.output_shape(shape)
            return shape
        if self._x_shape is None:
            raise ValueError(
                f"{self.name} has no fixed input shape; pass x_shape=(C, H, W) (without the batch)"
            )
        return self._x_shape

    @staticmethod
    def _check_tensor(t: Tensor, *, name: str, where: str) -> None:
        if not isinstance(t, Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor; got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{where}: {name} must be a real floating-point tensor; got dtype {t.dtype}")
        if t.ndim < 2:
            raise ValueError(
                f"{where}: {name} must be batch-first with shape (B, *shape); got shape {tuple(t.shape)}. "
                f"Add a batch dimension, e.g. {name}[None]."
            )
        if t.shape[0] == 0:
            raise ValueError(f"{where}: {name} holds no samples (batch size 0); pass at least one")

    def check_x(self, x: Tensor, *, name: str = "x", method: str = "A") -> tuple[int, ...]:
        """Validate an input batch and return the per-sample output shape.

        Args:
            x: Tensor of shape ``(B, *x_shape)``.
            name: Argument name used in messages.
            method: Method name used in messages.

        Returns:
            The per-sample shape of ``A(x)``.
        """
        where = f"{self.name}.{method}"
        self._check_tensor(x, name=name, where=where)
        shape = tuple(x.shape[1:])
        if self._x_shape is not None and shape != self._x_shape:
            hint = f"; add the batch dimension, e.g. {name}[None]" if tuple(x.shape) == self._x_shape else ""
            raise ValueError(
                f"{where}: {name} must have shape (B, {', '.join(map(str, self._x_shape))}) (batch first); "
                f"got {tuple(x.shape)}{hint}"
            )
        try:
            return self.output_shape(shape)
        except ValueError as err:
            raise ValueError(f"{where}: {name} of shape {tuple(x.shape)} is not accepted: {err}") from None

    def check_y(self, y: Tensor, *, name: str = "y", method: str = "At") -> tuple[int, ...]:
        """Validate a measurement batch and return the per-sample input shape it corresponds to."""
        where = f"{self.name}.{method}"
        self._check_tensor(y, name=name, where=where)
        try:
            return self.input_shape(tuple(y.shape[1:]))
        except ValueError as err:
            raise ValueError(f"{where}: {name} of shape {tuple(y.shape)} is not accepted: {err}") from None

    def _require_linear(self, method: str) -> None:
        if not self.is_linear:
            raise TypeError(
                f"{self.name}.{method} is only defined for linear operators and {self.name} is non-linear; "
                "use A_vjp(x, v) for gradients of the data term."
            )

    def _device(self) -> torch.device:
        for buf in self.buffers():
            return buf.device
        return torch.device("cpu")

    @staticmethod
    def _batch_scalar(value: float | Tensor, ref: Tensor, *, name: str, where: str) -> Tensor:
        """Turn a positive float, 0-d or ``(B,)`` tensor into a ``(B,)`` tensor like ``ref``'s batch."""
        batch = ref.shape[0]
        if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)):
            raise TypeError(
                f"{where}: {name} must be a positive float or a (B,) tensor; got {type(value).__name__}"
            )
        t = (
            torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
            if not isinstance(value, Tensor)
            else value
        )
        t = t.to(dtype=ref.dtype, device=ref.device)
        if t.ndim == 0:
            t = t.expand(batch)
        elif t.shape != (batch,):
            raise ValueError(
                f"{where}: {name} must be a scalar or have shape ({batch},); got {tuple(t.shape)}"
            )
        if not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
            raise ValueError(f"{where}: {name} must be finite and > 0; got {t.tolist()}")
        return t

    # ------------------------------------------------------------------------------------ forward / adjoint
    @abstractmethod
    def _A(self, x: Tensor) -> Tensor:
        """``A(x)`` without input checks."""

    def _At(self, y: Tensor) -> Tensor:
        """``Aᵀy`` without input checks (linear operators override this)."""
        raise TypeError(f"{self.name} has no adjoint")

    def A(self, x: Tensor) -> Tensor:
        """Apply the forward operator.

        Args:
            x: Input of shape ``(B, *x_shape)``.

        Returns:
            ``A(x)`` of shape ``(B, *y_shape)``.
        """
        self.check_x(x, method="A")
        return self._A(x)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`A`, so ``op(x)`` works."""
        return self.A(x)

    def At(self, y: Tensor) -> Tensor:
        """Apply the adjoint ``Aᵀ`` (linear operators only).

        Args:
            y: Measurements of shape ``(B, *y_shape)``.

        Returns:
            ``Aᵀy`` of shape ``(B, *x_shape)``.
        """
        self._require_linear("At")
        self.check_y(y, method="At")
        return self._At(y)

    def AtA(self, x: Tensor) -> Tensor:
        """``AᵀA x`` (linear operators only)."""
        self._require_linear("AtA")
        self.check_x(x, method="AtA")
        return self._At(self._A(x))

    def AAt(self, y: Tensor) -> Tensor:
        """``A Aᵀ y`` (linear operators only)."""
        self._require_linear("AAt")
        self.check_y(y, method="AAt")
        return self._A(self._At(y))

    def A_vjp(self, x: Tensor, v: Tensor, *, create_graph: bool = False) -> Tensor:
        """Vector–Jacobian product ``J_A(x)ᵀ v``.

        For a linear operator this is ``Aᵀv`` (``x`` only fixes the shape); otherwise it is computed with
        autograd through :meth:`A`.

        Args:
            x: Point of shape ``(B, *x_shape)``.
            v: Cotangent of shape ``(B, *y_shape)``.
            create_graph: Keep the graph of the product (for higher-order derivatives).

        Returns:
            ``J_A(x)ᵀ v`` of shape ``(B, *x_shape)``.
        """
        y_shape = self.check_x(x, method="A_vjp")
        self._check_tensor(v, name="v", where=f"{self.name}.A_vjp")
        if tuple(v.shape) != (x.shape[0], *y_shape):
            raise ValueError(
                f"{self.name}.A_vjp: v must have shape {(x.shape[0], *y_shape)} (like A(x)); got {tuple(v.shape)}"
            )
        if self.is_linear:
            return self._At(v)
        with torch.enable_grad():
            x_ = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            y = self._A(x_)
            (grad,) = torch.autograd.grad(y, x_, grad_outputs=v, create_graph=create_graph)
        return grad

    # ------------------------------------------------------------------------------------------- solvers
    def pinv(
        self, y: Tensor, *, rcond: float | None = None, tol: float = 1e-6, max_iter: int = 500
    ) -> Tensor:
        """Moore–Penrose pseudo-inverse ``A†y`` (minimum-norm least-squares solution).

        Closed form through the SVD where available (singular values ``≤ rcond·s_max`` count as zero; the
        default ``rcond`` is ``eps·max(m, n)`` as in ``torch.linalg.pinv``); otherwise conjugate gradient on the
        normal equations ``AᵀA x = Aᵀy`` started at zero, which converges to the minimum-norm solution.

        Args:
            y: Measurements of shape ``(B, *y_shape)``.
            rcond: Relative cut-off for small singular values (closed forms only).
            tol: CG relative tolerance (fallback only).
            max_iter: CG iteration cap (fallback only).

        Returns:
            ``A†y`` of shape ``(B, *x_shape)``.
        """
        self._require_linear("pinv")
        x_shape = self.check_y(y, method="pinv")
        if rcond is not None and not rcond >= 0:
            raise ValueError(f"{self.name}.pinv: rcond must be >= 0; got {rcond}")
        if rcond is None:
            rcond = torch.finfo(y.dtype).eps * max(math.prod(x_shape), math.prod(y.shape[1:]))
        return self._pinv(y, x_shape, rcond=rcond, tol=tol, max_iter=max_iter)

    def _pinv(
        self, y: Tensor, x_shape: tuple[int, ...], *, rcond: float, tol: float, max_iter: int
    ) -> Tensor:
        if self.has_svd:
            svd = self._svd(x_shape)
            s = svd.s.to(y)
            keep = s > rcond * s.max()
            s_inv = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
            return svd.V(s_inv * svd.Ut(y))
        b = self._At(y)
        return conjugate_gradient(lambda v: self._At(self._A(v)), b, tol=tol, max_iter=max_iter).x

    def solve_reg(
        self,
        b: Tensor,
        rho: float | Tensor,
        *,
        x0: Tensor | None = None,
        tol: float = 1e-6,
        max_iter: int = 500,
    ) -> Tensor:
        """Solve ``(AᵀA + ρI) x = b``.

        This is the linear system behind proximal steps (DiffPIR, DDS, PnP-HVAE's x-step). Closed form where
        the operator has one, otherwise conjugate gradient.

        Args:
            b: Right-hand side, shape ``(B, *x_shape)``.
            rho: ``ρ > 0``, a float or a ``(B,)`` tensor (one value per sample).
            x0: CG warm start (ignored by closed forms).
            tol: CG relative tolerance.
            max_iter: CG iteration cap.

        Returns:
            The solution ``x`` of shape ``(B, *x_shape)``.
        """
        self._require_linear("solve_reg")
        self.check_x(b, name="b", method="solve_reg")
        rho_t = self._batch_scalar(rho, b, name="rho", where=f"{self.name}.solve_reg")
        if x0 is not None and tuple(x0.shape) != tuple(b.shape):
            raise ValueError(
                f"{self.name}.solve_reg: x0 must have the shape of b {tuple(b.shape)}; got {tuple(x0.shape)}"
            )
        return self._solve_reg(b, rho_t, x0=x0, tol=tol, max_iter=max_iter)

    def _solve_reg(self, b: Tensor, rho: Tensor, *, x0: Tensor | None, tol: float, max_iter: int) -> Tensor:
        if self.has_svd:
            svd = self._svd(tuple(b.shape[1:]))
            s = svd.s.to(b)
            return svd.V(svd.Vt(b) / (s**2 + rho[:, None]))
        rho_b = append_dims(rho, b.ndim)
        return conjugate_gradient(
            lambda v: self._At(self._A(v)) + rho_b * v, b, x0=x0, tol=tol, max_iter=max_iter
        ).x

    def prox_l2(
        self,
        z: Tensor,
        y: Tensor,
        gamma: float | Tensor,
        *,
        tol: float = 1e-6,
        max_iter: int = 500,
    ) -> Tensor:
        """Proximal map of the data term: ``argmin_x ½‖Ax − y‖² + 1/(2γ)‖x − z‖²``.

        The optimality condition ``Aᵀ(Ax − y) + (x − z)/γ = 0`` gives ``(AᵀA + I/γ)x = Aᵀy + z/γ``, solved with
        :meth:`solve_reg` (closed form where available, else CG warm-started at ``z``).

        Args:
            z: Proximal centre, shape ``(B, *x_shape)``.
            y: Measurements, shape ``(B, *y_shape)``.
            gamma: Step ``γ > 0``, a float or a ``(B,)`` tensor.
            tol: CG relative tolerance.
            max_iter: CG iteration cap.

        Returns:
            The minimiser, shape ``(B, *x_shape)``.
        """
        self._require_linear("prox_l2")
        y_shape = self.check_x(z, name="z", method="prox_l2")
        self._check_tensor(y, name="y", where=f"{self.name}.prox_l2")
        if tuple(y.shape) != (z.shape[0], *y_shape):
            raise ValueError(
                f"{self.name}.prox_l2: y must have shape {(z.shape[0], *y_shape)}; got {tuple(y.shape)}"
            )
        g = self._batch_scalar(gamma, z, name="gamma", where=f"{self.name}.prox_l2")
        b = self._At(y) + z / append_dims(g, z.ndim)
        return self._solve_reg(b, 1.0 / g, x0=z, tol=tol, max_iter=max_iter)

    # ----------------------------------------------------------------------------------- decompositions
    def svd(self, x_shape: Sequence[int] | None = None) -> SVD:
        """Closed-form singular value decomposition (see :class:`SVD` for the coordinates).

        Args:
            x_shape: Per-sample input shape; defaults to the operator's own.

        Returns:
            An :class:`SVD`.

        Raises:
            NotImplementedError: If the operator has no closed-form SVD (``has_svd`` is False).
        """
        if not self.has_svd:
            raise NotImplementedError(
                f"{self.name} has no closed-form SVD, so methods that need one (e.g. DDRM) cannot use it. "
                "Use an operator with has_svd=True, or DenseOperator(op.dense(x_shape)) for small problems."
            )
        return self._svd(self.resolve_x_shape(x_shape))

    def _svd(self, x_shape: tuple[int, ...]) -> SVD:
        raise NotImplementedError(f"{self.name} has no closed-form SVD")

    def dense(
        self,
        x_shape: Sequence[int] | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        max_size: int = 16384,
    ) -> Tensor:
        """Materialise ``A`` as an ``(m, n)`` matrix acting on flattened samples (for tests and small problems).

        Args:
            x_shape: Per-sample input shape; defaults to the operator's own.
            dtype: Dtype of the matrix.
            device: Device of the matrix (defaults to the operator's).
            max_size: Refuse inputs with more than this many entries (``n``).

        Returns:
            The matrix ``M`` with ``A(x).flatten(1) = x.flatten(1) @ Mᵀ``.
        """
        self._require_linear("dense")
        shape = self.resolve_x_shape(x_shape)
        n = math.prod(shape)
        if n > max_size:
            raise ValueError(
                f"{self.name}.dense: n = {n} input entries exceeds max_size={max_size}; raise max_size"
            )
        device = torch.device(device) if device is not None else self._device()
        eye = torch.eye(n, dtype=dtype, device=device).reshape(n, *shape)
        cols = [self._A(eye[i : i + 1024]).reshape(min(1024, n - i), -1) for i in range(0, n, 1024)]
        return torch.cat(cols, dim=0).T.contiguous()

    def norm(
        self,
        x_shape: Sequence[int] | None = None,
        *,
        n_iter: int = 100,
        tol: float = 1e-12,
        generator: torch.Generator | None = None,
    ) -> float:
        """Spectral norm ``‖A‖₂`` (largest singular value).

        Closed form where available, otherwise the Lanczos method on ``AᵀA`` (faster and more reliable than
        plain power iteration when the top singular values are close) from a random start drawn from
        ``generator``; without one, a local generator seeded with 0 keeps the result deterministic.

        Args:
            x_shape: Per-sample input shape; defaults to the operator's own.
            n_iter: Maximum Krylov dimension.
            tol: Relative change of the top Ritz value at which the iteration stops.
            generator: Source of the random start.

        Returns:
            ``‖A‖₂`` as a float.
        """
        self._require_linear("norm")
        shape = self.resolve_x_shape(x_shape)
        closed = self._norm(shape)
        if closed is not None:
            return closed
        device = self._device()
        dtype = schedule_dtype(device)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        x0 = torch.randn((1, *shape), generator=gen, device=gen.device, dtype=dtype).to(device)
        lam = lanczos_max_eigenvalue(lambda v: self._At(self._A(v)), x0, max_iter=n_iter, tol=tol)
        return math.sqrt(max(lam, 0.0))

    def _norm(self, x_shape: tuple[int, ...]) -> float | None:
        if self.has_svd:
            return float(self._svd(x_shape).s.max())
        return None

    # --------------------------------------------------------------------------------------- composition
    def __matmul__(self, other: Operator) -> Operator:
        """``op2 @ op1`` is the composition ``A2 ∘ A1`` (see :func:`~genlab.inverse.operators.compose`)."""
        if not isinstance(other, Operator):
            return NotImplemented
        from genlab.inverse.operators.composition import compose

        return compose(self, other)

    def extra_repr(self) -> str:
        return f"x_shape={self._x_shape}, is_linear={self.is_linear}, has_svd={self.has_svd}"
