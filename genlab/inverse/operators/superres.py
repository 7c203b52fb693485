"""Super-resolution: downsampling by an integer factor, as a separable linear map ``Y = D_H X D_Wᵀ``.

Both modes are separable, ``A = D_H ⊗ D_W`` per channel, which gives the adjoint ``Aᵀ Y = D_Hᵀ Y D_W`` and a
closed-form SVD from the two small 1-D SVDs (``A = (U_H ⊗ U_W)(S_H ⊗ S_W)(V_H ⊗ V_W)ᵀ``), hence closed-form
``pinv`` and ``solve_reg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.inverse.operators.base import SVD, Operator
from genlab.utils import append_dims, schedule_dtype

__all__ = ["SuperResolution", "downsampling_matrix"]


def _cubic(t: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel (Keys 1981) with ``a = −0.5``, the one PIL and torch use."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t**2 + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def downsampling_matrix(
    size: int,
    factor: int,
    mode: Literal["box", "bicubic"],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """The 1-D downsampling matrix ``D`` of shape ``(size // factor, size)``.

    - ``"box"``: ``D[i, j] = 1/f`` for ``j ∈ [i f, (i + 1) f)`` (block average).
    - ``"bicubic"``: antialiased bicubic resampling as in PIL and ``torch.nn.functional.interpolate(...,
      mode="bicubic", antialias=True, align_corners=False)``: output pixel ``i`` has centre ``c = f(i + ½)``
      and weights ``w_j ∝ cubic((j + ½ − c)/f)`` over the input pixels (the kernel is stretched by ``f``, which
      is the antialiasing), truncated at the border and renormalised to sum 1.

    Args:
        size: Input length, divisible by ``factor``.
        factor: Integer downsampling factor ``f ≥ 1``.
        mode: ``"box"`` or ``"bicubic"``.
        dtype: Result dtype.
        device: Result device.

    Returns:
        The matrix ``D``.
    """
    out = size // factor
    if mode == "box":
        j = torch.arange(size, device=device)
        return (j[None, :] // factor == torch.arange(out, device=device)[:, None]).to(dtype) / factor
    centre = factor * (torch.arange(out, dtype=torch.float64, device=device) + 0.5)
    j = torch.arange(size, dtype=torch.float64, device=device)
    w = _cubic((j[None, :] + 0.5 - centre[:, None]) / factor)
    return (w / w.sum(dim=1, keepdim=True)).to(dtype)


class SuperResolution(Operator):
    """Downsampling by an integer factor: ``"box"`` (average pooling) or ``"bicubic"`` (antialiased).

    ``"box"`` is ``avg_pool2d(x, f)``: ``AAᵀ = I/f²``, so ``A† = f²Aᵀ`` and ``(AᵀA + ρI)⁻¹`` is explicit.
    ``"bicubic"`` is the fixed linear filter + stride of :func:`downsampling_matrix` (equal to torch's
    ``interpolate(..., mode="bicubic", antialias=True)``, the degradation of DPS/DDRM SR tasks up to their
    exact resizer); its adjoint is exact (``D_Hᵀ Y D_W``) and its SVD comes from the 1-D factors.

    Args:
        factor: Integer factor ``f ≥ 1``; image height and width must be divisible by it.
        mode: ``"box"`` or ``"bicubic"``.
        x_shape: Optional fixed per-sample input shape ``(C, H, W)``.
    """

    has_svd = True

    def __init__(
        self,
        factor: int,
        *,
        mode: Literal["box", "bicubic"] = "box",
        x_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an int >= 1; got {factor!r}")
        if mode not in ("box", "bicubic"):
            raise ValueError(f"mode must be 'box' or 'bicubic'; got {mode!r}")
        self.factor = factor
        self.mode = mode
        self._set_x_shape(x_shape)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(x_shape) != 3:
            raise ValueError(
                f"{self.name} acts on images; the per-sample shape must be (C, H, W), got {x_shape}"
            )
        channels, height, width = x_shape
        f = self.factor
        if height % f or width % f:
            raise ValueError(
                f"image size {height}×{width} is not divisible by factor {f}; crop or pad x first"
            )
        return channels, height // f, width // f

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(y_shape) != 3:
            raise ValueError(f"measurements must have per-sample shape (C, h, w); got {tuple(y_shape)}")
        shape = (y_shape[0], y_shape[1] * self.factor, y_shape[2] * self.factor)
        if self._x_shape is not None and shape != self._x_shape:
            raise ValueError(f"measurements must have per-sample shape {self.y_shape}; got {tuple(y_shape)}")
        return shape

    def matrices(
        self, height: int, width: int, *, dtype: torch.dtype, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """The 1-D factors ``(D_H, D_W)`` for an ``height × width`` input."""
        return (
            downsampling_matrix(height, self.factor, self.mode, dtype=dtype, device=device),
            downsampling_matrix(width, self.factor, self.mode, dtype=dtype, device=device),
        )

    def _A(self, x: Tensor) -> Tensor:
        if self.mode == "box":
            return F.avg_pool2d(x, self.factor)
        d_h, d_w = self.matrices(x.shape[-2], x.shape[-1], dtype=x.dtype, device=x.device)
        return torch.einsum("ih,bchw,jw->bcij", d_h, x, d_w)

    def _At(self, y: Tensor) -> Tensor:
        f = self.factor
        if self.mode == "box":
            return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / f**2
        d_h, d_w = self.matrices(y.shape[-2] * f, y.shape[-1] * f, dtype=y.dtype, device=y.device)
        return torch.einsum("ih,bcij,jw->bchw", d_h, y, d_w)

    def _pinv(
        self, y: Tensor, x_shape: tuple[int, ...], *, rcond: float, tol: float, max_iter: int
    ) -> Tensor:
        if self.mode == "box":
            return self._At(y) * self.factor**2
        return super()._pinv(y, x_shape, rcond=rcond, tol=tol, max_iter=max_iter)

    def _solve_reg(self, b: Tensor, rho: Tensor, *, x0: Tensor | None, tol: float, max_iter: int) -> Tensor:
        if self.mode == "box":
            # AᵀA = Π/f² with Π the projector onto block-constant images
            proj = self._At(self._A(b)) * self.factor**2
            rho_b = append_dims(rho, b.ndim)
            return (b - proj) / rho_b + proj / (rho_b + 1.0 / self.factor**2)
        return super()._solve_reg(b, rho, x0=x0, tol=tol, max_iter=max_iter)

    def _norm(self, x_shape: tuple[int, ...]) -> float:
        if self.mode == "box":
            return 1.0 / self.factor
        return super()._norm(x_shape)

    def _svd(self, x_shape: tuple[int, ...]) -> SVD:
        channels, height, width = x_shape
        h, w = height // self.factor, width // self.factor
        device = torch.device("cpu")
        d_h, d_w = self.matrices(height, width, dtype=schedule_dtype(device), device=device)
        u_h, s_h, vt_h = torch.linalg.svd(d_h, full_matrices=True)
        u_w, s_w, vt_w = torch.linalg.svd(d_w, full_matrices=True)
        v_h, v_w = vt_h.T, vt_w.T
        s_grid = torch.zeros(height, width, dtype=s_h.dtype, device=device)
        s_grid[:h, :w] = s_h[:, None] * s_w[None, :]
        s = s_grid.expand(channels, -1, -1).reshape(-1)

        def cast(m: Tensor, like: Tensor) -> Tensor:
            return m.to(dtype=like.dtype, device=like.device)

        def vt(x: Tensor) -> Tensor:
            return torch.einsum("hp,bchw,wq->bcpq", cast(v_h, x), x, cast(v_w, x)).reshape(x.shape[0], -1)

        def v(c: Tensor) -> Tensor:
            grid = c.reshape(c.shape[0], channels, height, width)
            return torch.einsum("hp,bcpq,wq->bchw", cast(v_h, c), grid, cast(v_w, c))

        def u(c: Tensor) -> Tensor:
            grid = c.reshape(c.shape[0], channels, height, width)[..., :h, :w]
            return torch.einsum("ip,bcpq,jq->bcij", cast(u_h, c), grid, cast(u_w, c))

        def ut(y: Tensor) -> Tensor:
            out = y.new_zeros(y.shape[0], channels, height, width)
            out[..., :h, :w] = torch.einsum("ip,bcij,jq->bcpq", cast(u_h, y), y, cast(u_w, y))
            return out.reshape(y.shape[0], -1)

        return SVD(s=s, U=u, Ut=ut, V=v, Vt=vt, x_shape=x_shape, y_shape=(channels, h, w))
