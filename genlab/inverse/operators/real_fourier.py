"""An orthonormal *real* Fourier basis for ``H × W`` images (the right singular vectors of circular blurs).

The unitary DFT diagonalises every circular convolution, but its coefficients are complex and come in
conjugate pairs ``X[-ν] = conj(X[ν])`` for a real image. Keeping one representative of each pair and splitting
it into ``√2·Re`` and ``√2·Im`` (self-conjugate frequencies, where ``X`` is real, keep ``Re`` only) gives exactly
``H·W`` real coefficients and an orthogonal map ``R^{H×W} → R^{H·W}`` (Parseval). With it the SVD of a circular
blur is real: ``A = U diag(|K̂|) Vᵀ`` with ``Vᵀ = pack ∘ rfft2`` and ``U = irfft2 ∘ (phase(K̂) ·) ∘ unpack``.

Representatives in the ``rfft2`` half spectrum ``(H, W//2 + 1)``: every row of the columns ``0 < k < W/2``; in
column ``0`` (and ``W/2`` for even ``W``) the rows ``0 < r < H/2`` (their partners ``H − r`` are skipped) plus
the self-conjugate rows ``0`` (and ``H/2`` for even ``H``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "half_spectrum_gains",
    "pack_half_spectrum",
    "real_fourier_analysis",
    "real_fourier_synthesis",
    "unpack_half_spectrum",
]


@dataclass(frozen=True)
class _HalfSpectrumIndex:
    """Flat positions in the ``(H, W//2+1)`` half spectrum used by the packing."""

    pos_re: Tensor  # positions whose real part is a coefficient (representatives + self-conjugate)
    scale_re: Tensor  # √2 for pair representatives, 1 for self-conjugate frequencies
    pos_im: Tensor  # positions whose imaginary part is a coefficient (pair representatives)
    conj_dst: Tensor  # skipped positions in the special columns ...
    conj_src: Tensor  # ... and the representatives they are conjugates of


def _index(height: int, width: int, device: torch.device, dtype: torch.dtype) -> _HalfSpectrumIndex:
    wr = width // 2 + 1
    rows = torch.arange(height, device=device)[:, None].expand(height, wr)
    cols = torch.arange(wr, device=device)[None, :].expand(height, wr)
    special_col = cols == 0
    if width % 2 == 0:
        special_col = special_col | (cols == width // 2)
    self_conj_row = rows == 0
    if height % 2 == 0:
        self_conj_row = self_conj_row | (rows == height // 2)
    lower_row = (rows > 0) & (2 * rows < height)
    self_conj = special_col & self_conj_row
    pair_rep = ~special_col | (special_col & lower_row)
    skipped = special_col & ~self_conj_row & ~lower_row
    flat = torch.arange(height * wr, device=device).reshape(height, wr)
    is_re = (self_conj | pair_rep).flatten()
    pos_re = torch.nonzero(is_re).flatten()
    ones = torch.ones(pos_re.shape, dtype=dtype, device=device)
    scale_re = torch.where(pair_rep.flatten()[pos_re], ones * math.sqrt(2.0), ones)
    pos_im = torch.nonzero(pair_rep.flatten()).flatten()
    conj_dst = flat[skipped]
    conj_src = ((height - rows[skipped]) % height) * wr + cols[skipped]
    return _HalfSpectrumIndex(pos_re, scale_re, pos_im, conj_dst, conj_src)


def pack_half_spectrum(spec: Tensor, shape: tuple[int, int]) -> Tensor:
    """Real coefficients of a Hermitian half spectrum.

    Args:
        spec: Complex tensor ``(..., H, W//2 + 1)``, the ``rfft2`` (``norm="ortho"``) of real images.
        shape: The image size ``(H, W)``.

    Returns:
        Real tensor ``(..., H·W)``.
    """
    height, width = shape
    if spec.shape[-2:] != (height, width // 2 + 1):
        raise ValueError(
            f"pack_half_spectrum: spec must end with {(height, width // 2 + 1)}; got {tuple(spec.shape)}"
        )
    real_dtype = spec.real.dtype
    idx = _index(height, width, spec.device, real_dtype)
    flat = spec.reshape(*spec.shape[:-2], -1)
    re = flat.real[..., idx.pos_re] * idx.scale_re
    im = flat.imag[..., idx.pos_im] * math.sqrt(2.0)
    return torch.cat([re, im], dim=-1)


def half_spectrum_gains(gain: Tensor, shape: tuple[int, int]) -> Tensor:
    """Per-coefficient values of a real Hermitian-symmetric gain (e.g. ``|K̂|``) in the packed ordering.

    If ``gain`` is real with ``gain[-ν] = gain[ν]``, then ``pack(gain · X) = half_spectrum_gains(gain) ·
    pack(X)``: the diagonal of the multiplier in the real Fourier basis.

    Args:
        gain: Real tensor ``(..., H, W//2 + 1)``.
        shape: The image size ``(H, W)``.

    Returns:
        Real tensor ``(..., H·W)``.
    """
    height, width = shape
    if gain.shape[-2:] != (height, width // 2 + 1):
        raise ValueError(
            f"half_spectrum_gains: gain must end with {(height, width // 2 + 1)}; got {tuple(gain.shape)}"
        )
    idx = _index(height, width, gain.device, gain.dtype)
    flat = gain.reshape(*gain.shape[:-2], -1)
    return torch.cat([flat[..., idx.pos_re], flat[..., idx.pos_im]], dim=-1)


def unpack_half_spectrum(coeffs: Tensor, shape: tuple[int, int]) -> Tensor:
    """Inverse of :func:`pack_half_spectrum`: a Hermitian-consistent half spectrum.

    Args:
        coeffs: Real tensor ``(..., H·W)``.
        shape: The image size ``(H, W)``.

    Returns:
        Complex tensor ``(..., H, W//2 + 1)``.
    """
    height, width = shape
    wr = width // 2 + 1
    if coeffs.shape[-1] != height * width:
        raise ValueError(
            f"unpack_half_spectrum: coeffs must end with {height * width}; got {tuple(coeffs.shape)}"
        )
    idx = _index(height, width, coeffs.device, coeffs.dtype)
    lead = coeffs.shape[:-1]
    n_re = idx.pos_re.numel()
    re = coeffs.new_zeros(*lead, height * wr)
    im = coeffs.new_zeros(*lead, height * wr)
    re[..., idx.pos_re] = coeffs[..., :n_re] / idx.scale_re
    im[..., idx.pos_im] = coeffs[..., n_re:] / math.sqrt(2.0)
    re[..., idx.conj_dst] = re[..., idx.conj_src]
    im[..., idx.conj_dst] = -im[..., idx.conj_src]
    return torch.complex(re, im).reshape(*lead, height, wr)


def real_fourier_analysis(x: Tensor) -> Tensor:
    """Coefficients of real images ``(..., H, W)`` in the orthonormal real Fourier basis, ``(..., H·W)``."""
    return pack_half_spectrum(torch.fft.rfft2(x, norm="ortho"), (x.shape[-2], x.shape[-1]))


def real_fourier_synthesis(coeffs: Tensor, shape: tuple[int, int]) -> Tensor:
    """Images ``(..., H, W)`` from their real Fourier coefficients ``(..., H·W)`` (inverse = transpose)."""
    return torch.fft.irfft2(unpack_half_spectrum(coeffs, shape), s=shape, norm="ortho")
