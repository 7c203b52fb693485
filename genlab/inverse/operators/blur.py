"""Blur operators: circular convolution through the FFT, and zero-padded/circular convolution through conv2d.

Both compute a true convolution ``y[i] = Σ_a k[a] x[i − a + c]`` with the centre ``c`` of
:func:`~genlab.inverse.operators.kernels.kernel_center` (``(k − 1)//2``, as ``scipy.signal.convolve2d``).
A kernel is ``(kh, kw)`` (shared by all channels) or ``(C, kh, kw)`` (one per channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.inverse.operators.base import SVD, Operator, as_shape
from genlab.inverse.operators.kernels import kernel_center
from genlab.inverse.operators.real_fourier import (
    half_spectrum_gains,
    pack_half_spectrum,
    real_fourier_analysis,
    real_fourier_synthesis,
    unpack_half_spectrum,
)
from genlab.utils import append_dims, schedule_dtype

__all__ = ["ConvBlur", "FFTBlur"]

_COMPLEX = {torch.float16: torch.complex32, torch.float32: torch.complex64, torch.float64: torch.complex128}


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return _COMPLEX.get(dtype, torch.complex64)


def _as_kernel(kernel: Tensor) -> Tensor:
    """Validate a blur kernel and return it as ``(C_k, kh, kw)``."""
    if not isinstance(kernel, Tensor):
        raise TypeError(
            f"kernel must be a torch.Tensor of shape (kh, kw) or (C, kh, kw); got {type(kernel).__name__}"
        )
    if not kernel.is_floating_point():
        raise TypeError(f"kernel must be a real floating-point tensor; got dtype {kernel.dtype}")
    if kernel.ndim == 2:
        kernel = kernel[None]
    if kernel.ndim != 3 or kernel.numel() == 0:
        raise ValueError(f"kernel must have shape (kh, kw) or (C, kh, kw); got {tuple(kernel.shape)}")
    if not bool(torch.isfinite(kernel).all()):
        raise ValueError("kernel contains NaN or infinite values")
    return kernel.detach().clone()


def _check_image(shape: tuple[int, ...], kernel: Tensor, name: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{name} acts on images; the per-sample shape must be (C, H, W), got {shape}")
    channels = shape[0]
    if kernel.shape[0] not in (1, channels):
        raise ValueError(
            f"{name}: the kernel has {kernel.shape[0]} channels but the image has {channels}; "
            "use a (kh, kw) kernel shared by all channels or one kernel per channel"
        )
    return shape  # type: ignore[return-value]


class FFTBlur(Operator):
    """Circular convolution with a kernel, computed with the FFT: ``A x = F⁻¹(K̂ · F x)``.

    Periodic boundaries make ``A`` diagonal in the Fourier basis, so ``Aᵀ``, ``A†``, ``(AᵀA + ρI)⁻¹`` and the
    SVD are closed forms (deepinv ``BlurFFT``; the circular-blur model of PnP-HVAE and DiffPIR). The SVD uses
    the orthonormal *real* Fourier basis of :mod:`~genlab.inverse.operators.real_fourier`:
    ``Vᵀ = pack ∘ rfft2``, ``s = |K̂|``, ``U = irfft2 ∘ (K̂/|K̂| ·) ∘ unpack``, so every factor is real.

    Args:
        kernel: ``(kh, kw)`` or ``(C, kh, kw)`` kernel, no larger than the image.
        image_shape: ``(H, W)`` (any number of channels) or ``(C, H, W)`` (fixes ``x_shape``).
    """

    has_svd = True

    def __init__(self, kernel: Tensor, image_shape: Sequence[int]) -> None:
        super().__init__()
        kernel = _as_kernel(kernel)
        shape = as_shape(image_shape, name="image_shape")
        if len(shape) not in (2, 3):
            raise ValueError(f"image_shape must be (H, W) or (C, H, W); got {shape}")
        self.image_size: tuple[int, int] = (shape[-2], shape[-1])
        if kernel.shape[-2] > shape[-2] or kernel.shape[-1] > shape[-1]:
            raise ValueError(
                f"FFTBlur: kernel {tuple(kernel.shape[-2:])} is larger than the image {self.image_size}; "
                "crop the kernel or use a larger image"
            )
        self.register_buffer("kernel", kernel)
        self._set_x_shape(shape if len(shape) == 3 else None)

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        _check_image(x_shape, self.kernel, self.name)
        if tuple(x_shape[-2:]) != self.image_size:
            raise ValueError(
                f"{self.name} was built for images of size {self.image_size}; got {tuple(x_shape[-2:])}"
            )
        return tuple(x_shape)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.output_shape(tuple(y_shape))

    def kernel_hat(self, *, dtype: torch.dtype | None = None, device: torch.device | None = None) -> Tensor:
        """Transfer function ``K̂ = rfft2(k centred at (0, 0))``, shape ``(C_k, H, W//2 + 1)``.

        Args:
            dtype: Real dtype to compute in (defaults to the kernel's).
            device: Device (defaults to the kernel's).
        """
        k = self.kernel.to(dtype=dtype or self.kernel.dtype, device=device or self.kernel.device)
        height, width = self.image_size
        kh, kw = k.shape[-2:]
        padded = k.new_zeros(k.shape[0], height, width)
        padded[:, :kh, :kw] = k
        ch, cw = kernel_center((kh, kw))
        padded = torch.roll(padded, shifts=(-ch, -cw), dims=(-2, -1))
        return torch.fft.rfft2(padded)

    def _filter(self, x: Tensor, multiplier: Tensor) -> Tensor:
        return torch.fft.irfft2(multiplier * torch.fft.rfft2(x), s=self.image_size)

    def _A(self, x: Tensor) -> Tensor:
        return self._filter(x, self.kernel_hat(dtype=x.dtype, device=x.device))

    def _At(self, y: Tensor) -> Tensor:
        return self._filter(y, self.kernel_hat(dtype=y.dtype, device=y.device).conj())

    def _pinv(
        self, y: Tensor, x_shape: tuple[int, ...], *, rcond: float, tol: float, max_iter: int
    ) -> Tensor:
        k_hat = self.kernel_hat(dtype=y.dtype, device=y.device)
        mag2 = k_hat.abs() ** 2
        keep = mag2.sqrt() > rcond * mag2.max().sqrt()
        inv = torch.where(
            keep, k_hat.conj() / torch.where(keep, mag2, torch.ones_like(mag2)), torch.zeros_like(k_hat)
        )
        return self._filter(y, inv)

    def _solve_reg(self, b: Tensor, rho: Tensor, *, x0: Tensor | None, tol: float, max_iter: int) -> Tensor:
        k_hat = self.kernel_hat(dtype=b.dtype, device=b.device)
        return self._filter(b, 1.0 / (k_hat.abs() ** 2 + append_dims(rho, b.ndim)))

    def _norm(self, x_shape: tuple[int, ...]) -> float:
        device = self.kernel.device
        return float(self.kernel_hat(dtype=schedule_dtype(device), device=device).abs().max())

    def _svd(self, x_shape: tuple[int, ...]) -> SVD:
        channels = x_shape[0]
        size = self.image_size
        device = self.kernel.device
        k_hat = self.kernel_hat(dtype=schedule_dtype(device), device=device).expand(channels, -1, -1)
        mag = k_hat.abs()
        phase = torch.where(
            mag > 0, k_hat / torch.where(mag > 0, mag, torch.ones_like(mag)), torch.ones_like(k_hat)
        )
        s = half_spectrum_gains(mag, size).reshape(-1)

        def vt(x: Tensor) -> Tensor:
            return real_fourier_analysis(x).reshape(x.shape[0], -1)

        def v(c: Tensor) -> Tensor:
            return real_fourier_synthesis(c.reshape(c.shape[0], channels, -1), size)

        def u(c: Tensor) -> Tensor:
            spec = unpack_half_spectrum(c.reshape(c.shape[0], channels, -1), size)
            return torch.fft.irfft2(
                spec * phase.to(dtype=_complex_dtype(c.dtype), device=c.device), s=size, norm="ortho"
            )

        def ut(y: Tensor) -> Tensor:
            spec = torch.fft.rfft2(y, norm="ortho") * phase.conj().to(
                dtype=_complex_dtype(y.dtype), device=y.device
            )
            return pack_half_spectrum(spec, size).reshape(y.shape[0], -1)

        return SVD(s=s, U=u, Ut=ut, V=v, Vt=vt, x_shape=x_shape, y_shape=x_shape)


class ConvBlur(Operator):
    """Convolution with a kernel through ``conv2d``; the adjoint is ``conv_transpose2d``.

    Boundary handling (``padding``):

    - ``"valid"``: no padding, output ``(H − kh + 1, W − kw + 1)`` (the realistic model: no wrap-around);
    - ``"same"``: zero padding, output ``(H, W)``, equal to ``scipy.signal.convolve2d(mode="same")``;
    - ``"circular"``: periodic padding, output ``(H, W)``; equals :class:`FFTBlur` with the same kernel.

    No closed-form SVD: ``pinv`` and ``solve_reg`` use conjugate gradient, ``norm`` power iteration.

    Args:
        kernel: ``(kh, kw)`` or ``(C, kh, kw)`` kernel.
        padding: ``"valid"``, ``"same"`` or ``"circular"``.
        x_shape: Optional fixed per-sample input shape ``(C, H, W)``.
    """

    def __init__(
        self,
        kernel: Tensor,
        *,
        padding: Literal["valid", "same", "circular"] = "valid",
        x_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if padding not in ("valid", "same", "circular"):
            raise ValueError(f"padding must be 'valid', 'same' or 'circular'; got {padding!r}")
        self.padding = padding
        self.register_buffer("kernel", _as_kernel(kernel))
        self._set_x_shape(x_shape)

    @property
    def _pads(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` padding of ``"same"``/``"circular"``."""
        kh, kw = self.kernel.shape[-2:]
        ch, cw = kernel_center((kh, kw))
        return kh - 1 - ch, ch, kw - 1 - cw, cw

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, height, width = _check_image(x_shape, self.kernel, self.name)
        kh, kw = self.kernel.shape[-2:]
        if kh > height or kw > width:
            raise ValueError(f"the {kh}×{kw} kernel is larger than the {height}×{width} image")
        if self.padding == "valid":
            return channels, height - kh + 1, width - kw + 1
        return tuple(x_shape)

    def input_shape(self, y_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(y_shape) != 3:
            raise ValueError(f"measurements must have per-sample shape (C, h, w); got {tuple(y_shape)}")
        kh, kw = self.kernel.shape[-2:]
        shape = (
            (y_shape[0], y_shape[1] + kh - 1, y_shape[2] + kw - 1)
            if self.padding == "valid"
            else tuple(y_shape)
        )
        if self._x_shape is not None and shape != self._x_shape:
            raise ValueError(f"measurements must have per-sample shape {self.y_shape}; got {tuple(y_shape)}")
        self.output_shape(shape)
        return shape

    def _weight(self, x: Tensor) -> tuple[Tensor, int]:
        w = torch.flip(self.kernel.to(dtype=x.dtype, device=x.device), dims=(-2, -1))[:, None]
        return w, w.shape[0]

    def _grouped(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → the layout conv2d needs: ``(B·C, 1, H, W)`` (shared kernel) or unchanged."""
        if self.kernel.shape[0] == 1:
            return x.reshape(-1, 1, *x.shape[-2:])
        return x

    def _A(self, x: Tensor) -> Tensor:
        w, groups = self._weight(x)
        xg = self._grouped(x)
        if self.padding != "valid":
            top, bottom, left, right = self._pads
            mode = "constant" if self.padding == "same" else "circular"
            xg = F.pad(xg, (left, right, top, bottom), mode=mode)
        out = F.conv2d(xg, w, groups=groups)
        return out.reshape(x.shape[0], x.shape[1], *out.shape[-2:])

    def _At(self, y: Tensor) -> Tensor:
        w, groups = self._weight(y)
        out = F.conv_transpose2d(self._grouped(y), w, groups=groups)
        if self.padding != "valid":
            top, bottom, left, right = self._pads
            height = out.shape[-2] - top - bottom
            width = out.shape[-1] - left - right
            core = out[..., top : top + height, left : left + width].clone()
            if self.padding == "circular":
                # adjoint of periodic padding: fold the padded borders back onto the rows/cols they copied
                rows = out[..., :, left : left + width]
                if top:
                    core[..., height - top :, :] += rows[..., :top, :]
                if bottom:
                    core[..., :bottom, :] += rows[..., top + height :, :]
                cols = out[..., top : top + height, :]
                if left:
                    core[..., :, width - left :] += cols[..., :, :left]
                if right:
                    core[..., :, :right] += cols[..., :, left + width :]
                corners = (
                    (slice(0, top), slice(0, left), slice(height - top, height), slice(width - left, width)),
                    (slice(0, top), slice(left + width, None), slice(height - top, height), slice(0, right)),
                    (slice(top + height, None), slice(0, left), slice(0, bottom), slice(width - left, width)),
                    (slice(top + height, None), slice(left + width, None), slice(0, bottom), slice(0, right)),
                )
                for src_r, src_c, dst_r, dst_c in corners:
                    block = out[..., src_r, src_c]
                    if block.numel():
                        core[..., dst_r, dst_c] += block
            out = core
        return out.reshape(y.shape[0], y.shape[1], *out.shape[-2:])
