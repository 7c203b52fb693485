"""Matrix-free linear algebra on batches: conjugate gradient and the power method.

Both work on tensors of any per-sample shape ``(B, ...)`` and treat every sample as its own system, so a batch
of problems is solved at once without ever forming a matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.utils import append_dims

__all__ = ["CGResult", "batch_dot", "conjugate_gradient", "lanczos_max_eigenvalue", "power_method"]


def batch_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample Euclidean inner product ``⟨a_i, b_i⟩``.

    Args:
        a: Tensor of shape ``(B, ...)``.
        b: Tensor of the same shape.

    Returns:
        A ``(B,)`` tensor.
    """
    return (a * b).reshape(a.shape[0], -1).sum(dim=1)


@dataclass(frozen=True)
class CGResult:
    """Output of :func:`conjugate_gradient`.

    Attributes:
        x: Approximate solution, shape ``(B, ...)``.
        n_iter: Number of iterations run (the same for the whole batch).
        residual_norm: Final ``‖b − M x‖`` per sample, shape ``(B,)``.
        converged: Whether every sample reached ``‖r‖ ≤ tol·‖b‖``.
    """

    x: Tensor
    n_iter: int
    residual_norm: Tensor
    converged: bool


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    *,
    x0: Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 500,
) -> CGResult:
    """Solve ``M x = b`` for a symmetric positive (semi-)definite ``M`` given only ``x ↦ M x``.

    Hestenes & Stiefel (1952), Algorithm "CG". Each sample of the batch is an independent system; a sample
    stops updating once its relative residual falls below ``tol``. Started from ``x0 = 0`` on a consistent
    semi-definite system, the iterates stay in the range of ``M`` and converge to the minimum-norm solution.

    Args:
        matvec: Batched map ``x ↦ M x`` (shape preserving).
        b: Right-hand side, shape ``(B, ...)``.
        x0: Initial guess (defaults to zeros).
        tol: Relative tolerance on ``‖b − M x‖ / ‖b‖`` per sample.
        max_iter: Maximum number of iterations.

    Returns:
        A :class:`CGResult`.
    """
    if tol < 0:
        raise ValueError(f"conjugate_gradient: tol must be >= 0; got {tol}")
    if max_iter < 0:
        raise ValueError(f"conjugate_gradient: max_iter must be >= 0; got {max_iter}")
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = batch_dot(r, r)
    b_norm = batch_dot(b, b).sqrt()
    threshold = tol * b_norm
    tiny = torch.finfo(b.dtype).tiny
    active = rr.sqrt() > threshold
    n_iter = 0
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        n_iter += 1
        mp = matvec(p)
        pmp = batch_dot(p, mp)
        alpha = torch.where(active & (pmp > tiny), rr / pmp.clamp_min(tiny), torch.zeros_like(rr))
        x = x + append_dims(alpha, x.ndim) * p
        r = r - append_dims(alpha, r.ndim) * mp
        rr_new = batch_dot(r, r)
        beta = torch.where(active, rr_new / rr.clamp_min(tiny), torch.zeros_like(rr))
        p = r + append_dims(beta, p.ndim) * p
        rr = torch.where(active, rr_new, rr)
        active = active & (rr.sqrt() > threshold) & (pmp > tiny)
    residual = (b - matvec(x)).reshape(b.shape[0], -1).norm(dim=1)
    converged = bool((rr.sqrt() <= threshold).all())
    return CGResult(x=x, n_iter=n_iter, residual_norm=residual, converged=converged)


def power_method(
    matvec: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    n_iter: int = 1000,
    tol: float = 1e-10,
) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite ``M`` by power iteration (Rayleigh quotient).

    Args:
        matvec: Map ``x ↦ M x`` on tensors shaped like ``x0``.
        x0: Non-zero starting vector, shape ``(1, ...)``.
        n_iter: Maximum number of iterations.
        tol: Stop once the Rayleigh quotient changes by less than ``tol`` relative.

    Returns:
        The estimate of ``λ_max(M)`` as a Python float.
    """
    norm = x0.norm()
    if not bool(norm > 0):
        raise ValueError("power_method: x0 must be non-zero")
    x = x0 / norm
    lam = 0.0
    for _ in range(n_iter):
        mx = matvec(x)
        lam_new = float((x * mx).sum())
        mx_norm = mx.norm()
        if not bool(mx_norm > 0):
            return 0.0
        x = mx / mx_norm
        if abs(lam_new - lam) <= tol * abs(lam_new):
            return lam_new
        lam = lam_new
    return lam


def lanczos_max_eigenvalue(
    matvec: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-12,
) -> float:
    """Largest eigenvalue of a symmetric ``M`` by the Lanczos method with full re-orthogonalisation.

    Lanczos (1950); the extreme Ritz value of the tridiagonal ``T_k`` converges much faster than power
    iteration when the top eigenvalues are close (Kaniel–Paige bounds). Keeps the ``k`` Krylov vectors
    (memory ``k × numel(x0)``); stops when the top Ritz value changes by less than ``tol`` relative, on
    breakdown (an invariant subspace: the value is then exact), or after ``max_iter`` steps.

    Args:
        matvec: Map ``x ↦ M x`` on tensors shaped like ``x0``.
        x0: Non-zero starting vector.
        max_iter: Maximum Krylov dimension.
        tol: Relative tolerance on the top Ritz value.

    Returns:
        The estimate of ``λ_max(M)`` as a Python float.
    """
    norm = x0.norm()
    if not bool(norm > 0):
        raise ValueError("lanczos_max_eigenvalue: x0 must be non-zero")
    basis = [(x0 / norm).reshape(-1)]
    alphas: list[float] = []
    betas: list[float] = []
    top = float("nan")
    for _ in range(max_iter):
        q = basis[-1]
        w = matvec(q.reshape(x0.shape)).reshape(-1)
        alphas.append(float(q @ w))
        stacked = torch.stack(basis)
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w = w - stacked.T @ (stacked @ w)
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        new_top = float(torch.linalg.eigvalsh(t)[-1])
        beta = float(w.norm())
        scale = max(abs(new_top), float(torch.finfo(x0.dtype).tiny))
        if (
            abs(new_top - top) <= tol * scale
            or beta <= 1e-12 * max(scale, abs(alphas[-1]))
            or len(basis) >= x0.numel()
        ):
            return new_top
        top = new_top
        betas.append(beta)
        basis.append(w / beta)
    return top
