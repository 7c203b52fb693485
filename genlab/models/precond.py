"""Preconditioning that enters through ``Field(precond=...)``, and the masked-output network wrapper.

A preconditioning turns a raw network ``F`` into the Field's prediction, ``c_skip·x + c_out·F(c_in·x, t)``. It
belongs to the :class:`~genlab.models.field.Field` (not to the training loop), so a sampler or a guidance
method that calls the Field sees exactly the function that training fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from genlab.couplings import mask_velocity
from genlab.interpolants import Interpolant
from genlab.models.field import call_net
from genlab.utils import append_dims

__all__ = ["EDMCoeffs", "EDMPrecond", "EDMPreconditioner", "MaskedOutput", "edm_coeffs", "edm_loss_weight"]


@dataclass
class EDMCoeffs:
    """EDM preconditioning coefficients at a batch of times, each of shape ``(B,)`` (float64 schedule math).

    Attributes:
        c_in: Input scale.
        c_skip: Skip weight.
        c_out: Output scale.
        weight: Loss weight ``λ = 1/c_out²``.
    """

    c_in: Tensor
    c_skip: Tensor
    c_out: Tensor
    weight: Tensor


def _check(interpolant: Interpolant, sigma_data: float) -> None:
    if not isinstance(interpolant, Interpolant):
        raise TypeError(f"interpolant must be a genlab Interpolant, got {type(interpolant).__name__}")
    if not interpolant.gaussian_source:
        raise ValueError("EDM preconditioning needs a Gaussian-source path (x_t = α·noise + β·data)")
    if not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")


def edm_coeffs(interpolant: Interpolant, t: Tensor | float, x: Tensor, *, sigma_data: float) -> EDMCoeffs:
    """EDM's ``c_in, c_skip, c_out, λ`` (Karras et al. 2022, Table 1) written in genlab's ``α(t), β(t)``.

    With ``σ = α/β`` applied to ``x_t/β``: ``c_in = 1/√(α² + β²σ_d²)``, ``c_skip = βσ_d²/(α² + β²σ_d²)``,
    ``c_out = ασ_d/√(α² + β²σ_d²)``, ``λ = (α² + β²σ_d²)/(ασ_d)²``; finite for every ``t`` (no division by β).

    Args:
        interpolant: Gaussian-source path.
        t: Times (scalar or ``(B,)``).
        x: The batch (device, batch size).
        sigma_data: Data standard deviation σ_d.

    Returns:
        :class:`EDMCoeffs`.
    """
    c = interpolant.coeffs(t, x)
    a, b, sd = c.alpha, c.beta, float(sigma_data)
    denom = a**2 + (b * sd) ** 2
    return EDMCoeffs(
        c_in=denom.rsqrt(),
        c_skip=b * sd**2 / denom,
        c_out=a * sd * denom.rsqrt(),
        weight=denom / (a * sd) ** 2,
    )


def edm_loss_weight(interpolant: Interpolant, t: Tensor, x: Tensor, *, sigma_data: float) -> Tensor:
    """EDM's loss weight λ = 1/c_out² = (α² + β²σ_d²)/(ασ_d)² (Karras et al. 2022, Table 1, ``λ(σ)``), which
    makes the preconditioned target unit-variance.

    Args:
        interpolant: Gaussian-source path.
        t: Times ``(B,)``.
        x: The batch (device, batch size).
        sigma_data: σ_data.

    Returns:
        Per-sample weights ``(B,)`` in ``x``'s dtype.
    """
    return edm_coeffs(interpolant, t, x, sigma_data=sigma_data).weight.to(x.dtype)


class EDMPrecond:
    r"""EDM preconditioning of a data prediction on any Gaussian-source path ``x_t = α x0 + β x1``; pass it as
    ``Field(net, interpolant, "x1", precond=EDMPrecond(interpolant, sigma_data=0.5))``.

    Karras et al. (NeurIPS 2022, Table 1) write ``D(x; σ) = c_skip x + c_out F(c_in x, c_noise)`` for
    ``x = y + σn``; applied to ``x_t/β`` (``σ = α/β``) this gives :func:`edm_coeffs`. The network's time input is
    genlab's ``t`` (EDM's ``c_noise = ln(σ)/4`` is a reparametrisation of the same scalar). The conditioning is
    passed to the network exactly as a Field without preconditioning passes it (:func:`call_net`).

    Args:
        interpolant: Gaussian-source path.
        sigma_data: Data standard deviation σ_d (EDM: 0.5 for images in [-1, 1]).
    """

    def __init__(self, interpolant: Interpolant, *, sigma_data: float = 0.5) -> None:
        _check(interpolant, sigma_data)
        self.interpolant = interpolant
        self.sigma_data = float(sigma_data)

    def __call__(self, net: nn.Module, x_t: Tensor, t: Tensor, cond: Any | None = None) -> Tensor:
        """``c_skip·x + c_out·F(c_in·x, t[, cond])``.

        Args:
            net: The raw network ``F``.
            x_t: State ``(B, ...)``.
            t: Times ``(B,)``.
            cond: Conditioning (a tensor or a Field cond dict).

        Returns:
            The data prediction, shape of ``x_t``.
        """
        c = edm_coeffs(self.interpolant, t, x_t, sigma_data=self.sigma_data)
        c_in, c_skip, c_out = (append_dims(v, x_t.ndim).to(x_t.dtype) for v in (c.c_in, c.c_skip, c.c_out))
        return c_skip * x_t + c_out * call_net(net, c_in * x_t, t, cond)

    def loss_weight(self, t: Tensor, x: Tensor) -> Tensor:
        """:func:`edm_loss_weight` of this preconditioning."""
        return edm_loss_weight(self.interpolant, t, x, sigma_data=self.sigma_data)

    def __repr__(self) -> str:
        return f"EDMPrecond(sigma_data={self.sigma_data})"


class EDMPreconditioner(nn.Module):
    """A raw network with :class:`EDMPrecond` applied, as one module ``D(x, t[, cond])`` (for use outside a
    Field; inside one, pass ``precond=EDMPrecond(...)`` instead).

    Args:
        net: Raw network ``F(x, t[, cond])``.
        interpolant: Gaussian-source path.
        sigma_data: Data standard deviation σ_d.
    """

    def __init__(self, net: nn.Module, interpolant: Interpolant, *, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.precond = EDMPrecond(interpolant, sigma_data=sigma_data)
        self.net = net

    @property
    def sigma_data(self) -> float:
        """σ_d."""
        return self.precond.sigma_data

    def forward(self, x: Tensor, t: Tensor, cond: Any | None = None) -> Tensor:
        """``c_skip·x + c_out·F(c_in·x, t[, cond])``."""
        return self.precond(self.net, x, t, cond)


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
