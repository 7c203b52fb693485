"""Negative log-likelihood and bits per dimension of data under a flow/diffusion model's probability-flow ODE.

Both functions wrap :func:`genlab.samplers.likelihood.log_likelihood` (instantaneous change of variables,
Chen et al. 2018 Thm. 1; exact or Hutchinson divergence, Grathwohl et al. 2019) and only change the units.

Convention for bits per dimension (the one of Flow++ (Ho et al. 2019, §3.1), Glow and the score-SDE code of
Song et al. 2021, App. D.2): image data are ``n_bins``-level integers ``k ∈ {0, …, n_bins − 1}^d`` that the
model sees as continuous values in an interval of width ``data_range`` (``[-1, 1]`` in genlab, so
``data_range = 2``) after uniform dequantisation, ``x = lo + (k + u)·data_range/n_bins``, ``u ~ U[0, 1)^d``.
A density ``p_x`` on that scale is a density ``p_y(y) = p_x(x)·(data_range/n_bins)^d`` on the bin scale
``y = k + u``, whose negative log-likelihood upper-bounds the discrete one (Theis et al. 2016, Eq. 9).
Hence, for ``d`` dimensions per sample,

    bits/dim = −log p_x(x) / (d ln 2) + log₂(n_bins / data_range),

which is ``+7`` for 8-bit images in ``[-1, 1]`` and ``+8`` for 8-bit images in ``[0, 1]``. With
``n_bins=None`` the offset is dropped and the value is the continuous ``−log₂ p_x(x)/d`` on the data's own
scale (what to report for data that never were discrete, e.g. 2-D toys). Sanity check: the uniform density on
``[-1, 1]^d`` gives 1 continuous bit/dim and exactly 8 bits/dim with ``n_bins=256`` (uniform over 256 levels).

The functions evaluate the density at the ``x`` they are given; to get the dequantisation bound the caller
passes dequantised data (average over several draws of ``u`` for a tighter Monte-Carlo estimate).

``genlab.samplers`` is imported when :func:`nll` runs, not when this module loads: metrics sit below the
samplers in genlab's layering, and this keeps ``import genlab.metrics`` free of the sampler stack.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from genlab.models.field import Field

__all__ = ["bits_per_dim", "nll", "nll_to_bits_per_dim"]


def _check_units(data_range: float, n_bins: int | None, fn: str) -> None:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)):
        raise TypeError(
            f"{fn}: data_range must be a positive float (2.0 for data in [-1, 1]); got {data_range!r}"
        )
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(
            f"{fn}: data_range must be a positive finite float (2.0 for [-1, 1]); got {data_range!r}"
        )
    if n_bins is not None and (isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2):
        raise ValueError(
            f"{fn}: n_bins must be an int >= 2 (256 for 8-bit images) or None for continuous data; got {n_bins!r}"
        )


def nll_to_bits_per_dim(
    nll_nats: Tensor | float, dim: int, *, data_range: float = 2.0, n_bins: int | None = 256
) -> Tensor:
    """Convert a negative log-likelihood in nats to bits per dimension (module docstring for the convention).

    ``bits/dim = nll / (dim · ln 2) + log₂(n_bins / data_range)`` (the offset is 0 when ``n_bins`` is ``None``).

    Args:
        nll_nats: ``−log p_x(x)`` in nats, per sample ``(B,)`` or a scalar.
        dim: Number of dimensions per sample (``C·H·W`` for images).
        data_range: Width of the interval the continuous data live in (2.0 for ``[-1, 1]``).
        n_bins: Number of quantisation levels of the original data (256 for 8-bit), or ``None``.

    Returns:
        Bits per dimension, same shape as ``nll_nats``.
    """
    fn = "nll_to_bits_per_dim"
    _check_units(data_range, n_bins, fn)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{fn}: dim must be a positive int (dimensions per sample); got {dim!r}")
    value = torch.as_tensor(nll_nats)
    if not value.is_floating_point():
        value = value.to(torch.get_default_dtype())
    offset = 0.0 if n_bins is None else math.log2(n_bins / data_range)
    return value / (dim * math.log(2.0)) + offset


def nll(
    field: Field,
    x: Tensor,
    *,
    cond: Any | None = None,
    source_log_prob: Callable[[Tensor], Tensor] | None = None,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    exact_divergence: bool | None = None,
    n_hutchinson: int = 1,
    generator: torch.Generator | None = None,
    t_end: float | None = None,
) -> Tensor:
    """Per-sample negative log-likelihood ``−log p(x)`` in nats under the field's probability-flow ODE.

    ``−log p(x) = −log p_source(X_0) + ∫_0^{t_end} ∇·b(t, X_t) dt`` along the PF-ODE trajectory from ``x``
    back to the source (see :func:`genlab.samplers.likelihood.log_likelihood`, whose arguments these are).

    Args:
        field: Field whose path determines the PF-ODE velocity.
        x: Data ``(B, ...)``.
        cond: Conditioning passed to the field.
        source_log_prob: ``x0 ↦ log p_source(x0)`` ``(B,)`` (default: the path's Gaussian source).
        method: Adaptive torchdiffeq method (``"dopri5"``, ...).
        rtol: Relative tolerance of the ODE solve.
        atol: Absolute tolerance of the ODE solve.
        exact_divergence: Exact divergence (``True``), Hutchinson (``False``) or automatic (``None``).
        n_hutchinson: Rademacher probes per sample when the divergence is estimated.
        generator: Generator of the Hutchinson probes.
        t_end: Data-side end of the integration (default: ``t = 1`` where the velocity is regular there, else
            ``1 − 1e-5``, e.g. VP; see :func:`genlab.samplers.likelihood.default_t_end`).

    Returns:
        ``(B,)`` NLL in nats.
    """
    from genlab.samplers.likelihood import log_likelihood

    result = log_likelihood(
        field,
        x,
        cond=cond,
        source_log_prob=source_log_prob,
        method=method,
        rtol=rtol,
        atol=atol,
        exact_divergence=exact_divergence,
        n_hutchinson=n_hutchinson,
        generator=generator,
        t_end=t_end,
    )
    return -result.log_prob


def bits_per_dim(
    field: Field,
    x: Tensor,
    *,
    data_range: float = 2.0,
    n_bins: int | None = 256,
    cond: Any | None = None,
    source_log_prob: Callable[[Tensor], Tensor] | None = None,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    exact_divergence: bool | None = None,
    n_hutchinson: int = 1,
    generator: torch.Generator | None = None,
    t_end: float | None = None,
) -> Tensor:
    """Per-sample bits per dimension ``−log p(x)/(d ln 2) + log₂(n_bins/data_range)`` (module docstring).

    Args:
        field: Field whose path determines the PF-ODE velocity.
        x: Data ``(B, ...)``, ``d = x[0].numel()`` dimensions per sample; with ``n_bins`` set, dequantised
            values spanning at most ``data_range`` (checked).
        data_range: Width of the data interval (2.0 for ``[-1, 1]``).
        n_bins: Quantisation levels of the original data (256 for 8-bit images), or ``None`` for the
            continuous bits/dim without the dequantisation offset.
        cond: Conditioning passed to the field.
        source_log_prob: ``x0 ↦ log p_source(x0)`` ``(B,)`` (default: the path's Gaussian source).
        method: Adaptive torchdiffeq method.
        rtol: Relative tolerance of the ODE solve.
        atol: Absolute tolerance of the ODE solve.
        exact_divergence: Exact divergence (``True``), Hutchinson (``False``) or automatic (``None``).
        n_hutchinson: Rademacher probes per sample when the divergence is estimated.
        generator: Generator of the Hutchinson probes.
        t_end: Data-side end of the integration (default: see :func:`nll`).

    Returns:
        ``(B,)`` bits per dimension.
    """
    fn = "bits_per_dim"
    _check_units(data_range, n_bins, fn)
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: x must be a torch.Tensor of shape (B, ...); got {type(x).__name__}")
    if n_bins is not None and x.numel() > 0 and bool(torch.isfinite(x).all()):
        span = float(x.max() - x.min())
        if span > data_range * (1.0 + 1e-6):
            raise ValueError(
                f"{fn}: x spans an interval of width {span:.4g} > data_range={data_range}; the dequantisation "
                "offset assumes data in an interval of width data_range (rescale x, set data_range, or pass "
                "n_bins=None for continuous bits/dim)"
            )
    value = nll(
        field,
        x,
        cond=cond,
        source_log_prob=source_log_prob,
        method=method,
        rtol=rtol,
        atol=atol,
        exact_divergence=exact_divergence,
        n_hutchinson=n_hutchinson,
        generator=generator,
        t_end=t_end,
    )
    return nll_to_bits_per_dim(value, int(x[0].numel()), data_range=data_range, n_bins=n_bins)
