"""Network wrappers used when a run builds its Field: EDM preconditioning and masked (inpainting) outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.couplings import mask_velocity
from genlab.interpolants import Interpolant
from genlab.utils import append_dims

__all__ = ["EDMPreconditioner", "MaskedOutput", "edm_loss_weight"]


def _edm_coeffs(
    interpolant: Interpolant, t: Tensor | float, x: Tensor, sigma_data: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_in, c_skip, c_out, λ)`` of EDM (Karras et al. 2022, Table 1) in α(t), β(t); shape ``(B,)``."""
    c = interpolant.coeffs(t, x)
    a, b, sd = c.alpha, c.beta, float(sigma_data)
    denom = a**2 + (b * sd) ** 2
    c_in = denom.rsqrt()
    c_skip = b * sd**2 / denom
    c_out = a * sd * denom.rsqrt()
    weight = denom / (a * sd) ** 2
    return c_in, c_skip, c_out, weight


def edm_loss_weight(interpolant: Interpolant, t: Tensor, x: Tensor, *, sigma_data: float) -> Tensor:
    """EDM's loss weight λ = 1/c_out² = (α² + β²σ_d²)/(ασ_d)², which makes the preconditioned target
    unit-variance.

    Args:
        interpolant: Gaussian-source path.
        t: Times ``(B,)``.
        x: The batch (device, batch size).
        sigma_data: σ_data.

    Returns:
        Per-sample weights ``(B,)`` in ``x``'s dtype.
    """
    return _edm_coeffs(interpolant, t, x, sigma_data)[3].to(x.dtype)


class EDMPreconditioner(nn.Module):
    r"""EDM preconditioning of a data prediction on any Gaussian-source path ``x_t = α x0 + β x1``.

    Karras et al. (NeurIPS 2022, Table 1) write ``D(x; σ) = c_skip x + c_out F(c_in x, c_noise)`` for
    ``x = y + σn`` with ``c_skip = σ_d²/(σ² + σ_d²)``, ``c_out = σσ_d/√(σ² + σ_d²)``,
    ``c_in = 1/√(σ² + σ_d²)``. Applying it to ``x_t/β`` (so ``σ = α/β``) gives, in genlab's coefficients,

        c_in = 1/√(α² + β²σ_d²),   c_skip = βσ_d²/(α² + β²σ_d²),   c_out = ασ_d/√(α² + β²σ_d²),

    finite for every t (no division by β). The network's time input is genlab's ``t`` (EDM's
    ``c_noise = ln(σ)/4`` is a reparametrisation of the same scalar); the loss weight is
    :func:`edm_loss_weight`. The wrapped module predicts ``x1``.

    Args:
        net: Raw network ``F(x, t[, cond])``.
        interpolant: Gaussian-source path.
        sigma_data: Data standard deviation σ_d (EDM: 0.5 for images in [-1, 1]).
    """

    def __init__(self, net: nn.Module, interpolant: Interpolant, *, sigma_data: float = 0.5) -> None:
        super().__init__()
        if not interpolant.gaussian_source:
            raise ValueError("EDM preconditioning needs a Gaussian-source path (x_t = α·noise + β·data)")
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.interpolant = interpolant
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, t: Tensor, cond: Any | None = None, **kwargs: Any) -> Tensor:
        """``c_skip·x + c_out·F(c_in·x, t[, cond])``."""
        c_in, c_skip, c_out, _ = (
            append_dims(v, x.ndim).to(x.dtype) for v in _edm_coeffs(self.interpolant, t, x, self.sigma_data)
        )
        inner = c_in * x
        f = self.net(inner, t, **kwargs) if cond is None else self.net(inner, t, cond, **kwargs)
        return c_skip * x + c_out * f


class MaskedOutput(nn.Module):
    """Zero the output on observed pixels, ``(1 − ξ)∘F(x, t, cond)`` (Albergo et al., ICML 2024, §4.1).

    For the masked (inpainting) coupling the observed pixels never move along the path, so the velocity is
    zero there; the mask ``ξ`` (1 = observed) is the last channel of the conditioning image the coupling
    builds (``cond="mask"`` or ``"image_and_mask"``), so the same wrapper works in training and at sampling
    time.

    Args:
        net: The network, called as ``net(x, t, cond)``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, **kwargs: Any) -> Tensor:
        """``(1 − cond[:, -1:])·net(x, t, cond)``."""
        if not isinstance(cond, Tensor) or cond.ndim != x.ndim:
            raise ValueError(
                "MaskedOutput needs the coupling's conditioning image whose last channel is the mask; "
                "use the masked coupling with cond='mask' or 'image_and_mask'"
            )
        out = self.net(x, t, cond, **kwargs)
        return mask_velocity(out, cond[:, -1:].to(torch.float32))
