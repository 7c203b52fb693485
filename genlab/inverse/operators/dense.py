"""An explicit matrix ``A`` acting on flattened samples, with its SVD computed once and cached."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.inverse.operators.base import SVD, Operator, as_shape
from genlab.utils import append_dims, schedule_dtype

__all__ = ["DenseOperator"]


@dataclass(frozen=True)
class _Factors:
    """Thin SVD ``M = U_k diag(s_k) V_kᵀ`` (``k = min(m, n)``) plus a full orthogonal ``Q`` with
    ``Q[:, :k] = V_k · diag(signs)``, kept as Householder reflectors (``geqrf``) so it costs ``O(nk)`` memory."""

    u: Tensor
    s: Tensor
    v: Tensor
    qr_a: Tensor
    qr_tau: Tensor
    signs: Tensor


class DenseOperator(Operator):
    """Linear operator given by a matrix ``M`` of shape ``(m, n)``: ``A x = M x`` on flattened samples.

    ``x`` has per-sample shape ``x_shape`` (default ``(n,)``), ``y`` has ``y_shape`` (default ``(m,)``). The thin
    SVD is computed in float64 on first use and cached (recomputed if the matrix, its dtype or its device
    changes); ``pinv``, ``solve_reg`` (via ``(AᵀA + ρI)⁻¹b = (b − P b)/ρ + V_k (V_kᵀb)/(s² + ρ)``, ``P = V_kV_kᵀ``),
    ``norm`` and ``svd`` use it. The full right basis ``V`` (null space included) is applied through the
    Householder reflectors of ``V_k``, never formed.

    Args:
        matrix: ``(m, n)`` real matrix.
        x_shape: Per-sample input shape with ``prod = n``.
        y_shape: Per-sample output shape with ``prod = m``.
    """

    has_svd = True

    def __init__(
        self,
        matrix: Tensor,
        *,
        x_shape: Sequence[int] | None = None,
        y_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(matrix, Tensor):
            raise TypeError(f"matrix must be a torch.Tensor of shape (m, n); got {type(matrix).__name__}")
        if not matrix.is_floating_point():
            raise TypeError(f"matrix must be real floating-point; got dtype {matrix.dtype}")
        if matrix.ndim != 2 or matrix.numel() == 0:
            raise ValueError(f"matrix must have shape (m, n) with m, n >= 1; got {tuple(matrix.shape)}")
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("matrix contains NaN or infinite values")
        m, n = matrix.shape
        self.register_buffer("matrix", matrix.detach().clone())
        xs = (n,) if x_shape is None else as_shape(x_shape, name="x_shape")
        ys = (m,) if y_shape is None else as_shape(y_shape, name="y_shape")
        if math.prod(xs) != n:
            raise ValueError(f"x_shape {xs} has {math.prod(xs)} entries but the matrix has n = {n} columns")
        if math.prod(ys) != m:
            raise ValueError(f"y_shape {ys} has {math.prod(ys)} entries but the matrix has m = {m} rows")
        self._out_shape = ys
        self._cache: dict[tuple, _Factors] = {}
        self._set_x_shape(xs)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self._x_shape is not None and tuple(x_shape) != self._x_shape:
            raise ValueError(f"inputs must have per-sample shape {self._x_shape}; got {tuple(x_shape)}")
        if math.prod(x_shape) != self.matrix.shape[1]:
            raise ValueError(
                f"inputs must have {self.matrix.shape[1]} entries per sample; got shape {tuple(x_shape)}"
            )
        return self._out_shape

    def _A(self, x: Tensor) -> Tensor:
        m = self.matrix.to(dtype=x.dtype, device=x.device)
        return (x.reshape(x.shape[0], -1) @ m.T).reshape(x.shape[0], *self._out_shape)

    def _At(self, y: Tensor) -> Tensor:
        m = self.matrix.to(dtype=y.dtype, device=y.device)
        return (y.reshape(y.shape[0], -1) @ m).reshape(y.shape[0], *self.x_shape)  # type: ignore[misc]

    def factors(self) -> _Factors:
        """The cached thin SVD and Householder basis (float64 where the device allows)."""
        mat = self.matrix
        key = (mat.data_ptr(), mat._version, mat.dtype, mat.device, tuple(mat.shape))
        if key not in self._cache:
            work = mat.to(schedule_dtype(mat.device))
            u, s, vh = torch.linalg.svd(work, full_matrices=False)
            v = vh.T.contiguous()
            qr_a, qr_tau = torch.geqrf(v)
            signs = torch.sign(torch.diagonal(qr_a)[: v.shape[1]])
            signs = torch.where(signs == 0, torch.ones_like(signs), signs)
            self._cache.clear()
            self._cache[key] = _Factors(u=u, s=s, v=v, qr_a=qr_a, qr_tau=qr_tau, signs=signs)
        return self._cache[key]

    def _pinv(
        self, y: Tensor, x_shape: tuple[int, ...], *, rcond: float, tol: float, max_iter: int
    ) -> Tensor:
        f = self.factors()
        u, s, v = (t.to(dtype=y.dtype, device=y.device) for t in (f.u, f.s, f.v))
        keep = s > rcond * s.max()
        s_inv = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
        coef = (y.reshape(y.shape[0], -1) @ u) * s_inv
        return (coef @ v.T).reshape(y.shape[0], *x_shape)

    def _solve_reg(self, b: Tensor, rho: Tensor, *, x0: Tensor | None, tol: float, max_iter: int) -> Tensor:
        f = self.factors()
        s, v = (t.to(dtype=b.dtype, device=b.device) for t in (f.s, f.v))
        flat = b.reshape(b.shape[0], -1)
        rho_c = append_dims(rho, 2)
        coef = flat @ v
        x = (coef / (s**2 + rho_c)) @ v.T
        if v.shape[1] < v.shape[0]:  # null space of A is non-trivial
            x = x + (flat - coef @ v.T) / rho_c
        return x.reshape(b.shape)

    def _norm(self, x_shape: tuple[int, ...]) -> float:
        return float(self.factors().s.max())

    def _svd(self, x_shape: tuple[int, ...]) -> SVD:
        f = self.factors()
        n = self.matrix.shape[1]
        k = f.s.shape[0]
        s = torch.cat([f.s, f.s.new_zeros(n - k)])
        y_shape = self._out_shape

        def q_apply(c: Tensor, *, transpose: bool) -> Tensor:
            a, tau = f.qr_a.to(dtype=c.dtype, device=c.device), f.qr_tau.to(dtype=c.dtype, device=c.device)
            return torch.ormqr(a, tau, c.T.contiguous(), left=True, transpose=transpose).T

        def signed(c: Tensor) -> Tensor:
            out = c.clone()
            out[:, :k] = out[:, :k] * f.signs.to(dtype=c.dtype, device=c.device)
            return out

        def vt(x: Tensor) -> Tensor:
            return signed(q_apply(x.reshape(x.shape[0], n), transpose=True))

        def v(c: Tensor) -> Tensor:
            return q_apply(signed(c), transpose=False).reshape(c.shape[0], *x_shape)

        def u(c: Tensor) -> Tensor:
            return (c[:, :k] @ f.u.to(dtype=c.dtype, device=c.device).T).reshape(c.shape[0], *y_shape)

        def ut(y: Tensor) -> Tensor:
            coef = y.reshape(y.shape[0], -1) @ f.u.to(dtype=y.dtype, device=y.device)
            return torch.cat([coef, coef.new_zeros(coef.shape[0], n - k)], dim=1)

        return SVD(s=s, U=u, Ut=ut, V=v, Vt=vt, x_shape=x_shape, y_shape=y_shape)
