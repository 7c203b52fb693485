"""DDBM's bridge preconditioning and ``bridge_karras`` loss weight, as a ``Field(precond=...)``.

Zhou, Lou, Khanna, Ermon, "Denoising Diffusion Bridge Models", ICLR 2024, §3.3 and App. A.4 (Table of the
preconditioning; reference code ``ddbm/karras_diffusion.py``, ``get_bridge_scalings``). On the bridge marginal
``x_τ = a_τ x_T + b_τ x_0 + c_τ ε`` (condition ``x_T``, data ``x_0``) with end statistics ``σ_0`` (data), ``σ_T``
(condition), ``σ_0T`` (their covariance) and a noise multiplier ``c`` (1 in the paper):

* ``A = a²σ_T² + b²σ_0² + 2abσ_0T + c²c_τ²`` (the variance of ``x_τ`` under those statistics),
* ``c_in = A^{-1/2}``, ``c_skip = (bσ_0² + aσ_0T)/A``,
* ``c_out = √(a²(σ_0²σ_T² − σ_0T²) + σ_0²c²c_τ²)·c_in``,
* ``c_noise = ¼·log(τ + 1e-44)`` (the reference multiplies it by 1000; genlab's :class:`~genlab.models.UNet`
  multiplies its time input by ``time_scale = 1000``, which gives the same network input),
* ``D_θ(x_τ, τ, x_T) = c_skip x_τ + c_out F_θ(c_in x_τ, c_noise, x_T)`` with ``x_T`` concatenated as channels,
* loss weight ("bridge_karras") ``λ = 1/c_out²``, training times ``τ ~ U[τ_min, T]`` ("real-uniform").

genlab's bridge is the same path with ``(α, β, γ) = (a, b, c_τ)`` at ``τ = T(1 − t)`` (``reference/
interpolants.md`` §5), so the coefficients are written here in the interpolant's ``α, β, γ`` and apply to any
path whose source is the known condition (``conditional_source=True``). With a Gaussian source (``σ_T = 1``,
``σ_0T = 0``, ``γ = 0``) they reduce to EDM's (Karras et al. 2022, Table 1): the same formula.

What is reconstructed: the reference code evaluates ``a, b, c`` from log-SNR expressions; genlab evaluates the
same quantities from :class:`~genlab.interpolants.DDBMSchedule` (checked equal in the interpolant tests). The
network time input is ``c_noise`` by default (``noise_input="ddbm"``), or genlab's ``t`` (``"t"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from genlab.interpolants import Interpolant
from genlab.interpolants.schedules import DDBMSchedule
from genlab.models.field import call_net
from genlab.utils import append_dims, as_time

__all__ = ["BridgeCoeffs", "DDBMPrecond", "bridge_coeffs", "bridge_loss_weight", "bridge_tau"]

_NOISE_INPUTS = ("ddbm", "t")


@dataclass
class BridgeCoeffs:
    """DDBM bridge preconditioning coefficients at a batch of times, each ``(B,)`` (float64 schedule math).

    Attributes:
        c_in: Input scale ``A^{-1/2}``.
        c_skip: Skip weight.
        c_out: Output scale.
        c_noise: Network noise input ``¼·log(τ + 1e-44)``.
        weight: Loss weight ``λ = 1/c_out²`` ("bridge_karras").
    """

    c_in: Tensor
    c_skip: Tensor
    c_out: Tensor
    c_noise: Tensor
    weight: Tensor


def bridge_tau(interpolant: Interpolant, t: Tensor) -> Tensor:
    """DDBM time ``τ = T(1 − t)`` of genlab times ``t`` (``T = 1`` for a bridge that is not a DDBM schedule)."""
    sched = interpolant.schedule
    return sched.tau(t) if isinstance(sched, DDBMSchedule) else 1 - t


def _check_stats(sigma_data: float, sigma_source: float, cov: float, c: float) -> None:
    for name, v in (("sigma_data", sigma_data), ("sigma_source", sigma_source), ("c", c)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite float > 0, got {v!r}")
    if not (isinstance(cov, (int, float)) and math.isfinite(cov)) or cov**2 > (sigma_data * sigma_source) ** 2:
        raise ValueError(
            f"cov must satisfy cov² ≤ (sigma_data·sigma_source)² (a covariance of the two ends), got {cov!r}"
        )


def bridge_coeffs(
    interpolant: Interpolant,
    t: Tensor | float,
    x: Tensor,
    *,
    sigma_data: float = 0.5,
    sigma_source: float | None = None,
    cov: float = 0.0,
    c: float = 1.0,
) -> BridgeCoeffs:
    """DDBM's ``c_in, c_skip, c_out, c_noise, λ`` (Zhou et al. ICLR'24, App. A.4) in genlab's ``α, β, γ``.

    Args:
        interpolant: A bridge path (the source x0 is the known condition x_T).
        t: Genlab times (scalar or ``(B,)``).
        x: The batch (device, batch size).
        sigma_data: σ_0, standard deviation of the data end (DDBM: 0.5).
        sigma_source: σ_T, standard deviation of the condition end (default: ``sigma_data``, as DDBM).
        cov: σ_0T, covariance of the two ends (DDBM: 0).
        c: Noise multiplier (DDBM: 1).

    Returns:
        :class:`BridgeCoeffs` (float64).
    """
    s0 = float(sigma_data)
    s_t = s0 if sigma_source is None else float(sigma_source)
    _check_stats(s0, s_t, float(cov), float(c))
    return _bridge_coeffs(interpolant, t, x, s0, s_t, float(cov), float(c))


def _bridge_coeffs(
    interpolant: Interpolant, t: Tensor | float, x: Tensor, s0: float, s_t: float, cov: float, c: float
) -> BridgeCoeffs:
    """:func:`bridge_coeffs` for statistics already checked (the preconditioning checks them once)."""
    co = interpolant.coeffs(t, x)
    a, b, g = co.alpha, co.beta, co.gamma
    var = (c * g) ** 2
    big_a = a**2 * s_t**2 + b**2 * s0**2 + 2 * a * b * cov + var
    c_in = big_a.rsqrt()
    c_skip = (b * s0**2 + a * cov) / big_a
    c_out = torch.sqrt(a**2 * (s0**2 * s_t**2 - cov**2) + s0**2 * var) * c_in
    tau = bridge_tau(interpolant, as_time(t, x))
    c_noise = 0.25 * torch.log(tau + 1e-44)
    return BridgeCoeffs(c_in=c_in, c_skip=c_skip, c_out=c_out, c_noise=c_noise, weight=c_out.pow(-2))


def bridge_loss_weight(interpolant: Interpolant, t: Tensor, x: Tensor, **stats: float) -> Tensor:
    """The ``bridge_karras`` loss weight ``λ = 1/c_out²`` (DDBM, App. A.4) in ``x``'s dtype, shape ``(B,)``.

    Args:
        interpolant: Bridge path.
        t: Genlab times ``(B,)``.
        x: The batch.
        **stats: ``sigma_data``, ``sigma_source``, ``cov``, ``c`` of :func:`bridge_coeffs`.
    """
    return bridge_coeffs(interpolant, t, x, **stats).weight.to(x.dtype)


class DDBMPrecond:
    r"""DDBM's bridge preconditioning of a data prediction; pass it as
    ``Field(net, DiffusionBridge("vp"), "x1", precond=DDBMPrecond(bridge))``.

    ``D(x_t, t, x0) = c_skip x_t + c_out F(c_in x_t, c_noise, cond)`` (Zhou et al. ICLR'24, App. A.4; see the
    module docstring for the coefficients). The network receives the Field's ``cond`` exactly as without
    preconditioning (:func:`~genlab.models.call_net`): for a bridge run that is the condition x0, which the
    :class:`~genlab.models.UNet` concatenates as channels. The preconditioning also carries the paper's
    training law: :meth:`loss_weight` (``bridge_karras``, ``λ = 1/c_out²``) and :meth:`train_times` (``τ``
    uniform on ``[τ_min, T]``, "real-uniform"), which :class:`~genlab.training.InterpolantObjective` uses.

    Args:
        interpolant: A bridge (``conditional_source=True``).
        sigma_data: σ_0 of the data end (DDBM: 0.5).
        sigma_source: σ_T of the condition end (default ``sigma_data``, DDBM).
        cov: σ_0T (DDBM: 0).
        c: Noise multiplier (DDBM: 1).
        noise_input: ``"ddbm"``: the network's time input is ``c_noise = ¼·log(τ + 1e-44)`` (paper);
            ``"t"``: genlab's ``t``.
        tau_min: Smallest training τ (default: 1e-4 for a VP DDBM bridge, 0.002 for VE, 1e-4 otherwise, as in
            DDBM's ``args.sh``).

    Raises:
        TypeError: If ``interpolant`` is not an Interpolant.
        ValueError: If it is not a bridge, or a statistic is out of range.
    """

    def __init__(
        self,
        interpolant: Interpolant,
        *,
        sigma_data: float = 0.5,
        sigma_source: float | None = None,
        cov: float = 0.0,
        c: float = 1.0,
        noise_input: Literal["ddbm", "t"] = "ddbm",
        tau_min: float | None = None,
    ) -> None:
        if not isinstance(interpolant, Interpolant):
            raise TypeError(f"interpolant must be a genlab Interpolant, got {type(interpolant).__name__}")
        if not interpolant.conditional_source:
            raise ValueError(
                f"DDBM preconditioning needs a bridge whose source is the known condition "
                f"(conditional_source=True, e.g. DiffusionBridge('vp')); got {interpolant!r}. For a Gaussian "
                "source use EDMPrecond"
            )
        if noise_input not in _NOISE_INPUTS:
            raise ValueError(f"noise_input must be one of {_NOISE_INPUTS}, got {noise_input!r}")
        s_t = sigma_data if sigma_source is None else sigma_source
        _check_stats(float(sigma_data), float(s_t), float(cov), float(c))
        sched = interpolant.schedule
        self.T = float(sched.T) if isinstance(sched, DDBMSchedule) else 1.0
        default_min = 0.002 if isinstance(sched, DDBMSchedule) and sched.kind == "ve" else 1e-4
        self.tau_min = default_min if tau_min is None else float(tau_min)
        if not 0 < self.tau_min < self.T:
            raise ValueError(f"tau_min must lie in (0, T={self.T}), got {tau_min!r}")
        self.interpolant = interpolant
        self.sigma_data = float(sigma_data)
        self.sigma_source = float(s_t)
        self.cov = float(cov)
        self.c = float(c)
        self.noise_input = noise_input

    def coeffs(self, t: Tensor | float, x: Tensor) -> BridgeCoeffs:
        """:func:`bridge_coeffs` with this preconditioning's statistics (checked when it was built)."""
        return _bridge_coeffs(self.interpolant, t, x, self.sigma_data, self.sigma_source, self.cov, self.c)

    def __call__(self, net: nn.Module, x_t: Tensor, t: Tensor, cond: Any | None = None) -> Tensor:
        """``c_skip·x_t + c_out·F(c_in·x_t, c_noise or t, cond)``.

        Args:
            net: The raw network ``F``.
            x_t: State ``(B, ...)``.
            t: Genlab times ``(B,)``.
            cond: The Field's conditioning (the condition x0 as a tensor or in a dict).

        Returns:
            The data prediction, shape of ``x_t``.
        """
        k = self.coeffs(t, x_t)
        c_in, c_skip, c_out = (append_dims(v, x_t.ndim).to(x_t.dtype) for v in (k.c_in, k.c_skip, k.c_out))
        time_in = k.c_noise.to(x_t.dtype) if self.noise_input == "ddbm" else t
        return c_skip * x_t + c_out * call_net(net, c_in * x_t, time_in, cond)

    def loss_weight(self, t: Tensor, x: Tensor) -> Tensor:
        """The ``bridge_karras`` weight ``λ = 1/c_out²`` at genlab times ``t`` ``(B,)``, in ``x``'s dtype."""
        return self.coeffs(t, x).weight.to(x.dtype)

    def train_times(self, n: int, *, generator: torch.Generator | None = None,
                    device: torch.device | None = None) -> Tensor:
        """DDBM's training times: ``τ ~ U[τ_min, T]`` ("real-uniform"), returned as genlab ``t = 1 − τ/T``.

        Args:
            n: Number of times.
            generator: Random generator (draws on its device).
            device: Device of the result.

        Returns:
            ``(n,)`` float64 genlab times in ``[0, 1 − τ_min/T]``.
        """
        gdev = generator.device if generator is not None else device
        u = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64)
        tau = self.tau_min + (self.T - self.tau_min) * u
        t = 1 - tau / self.T
        return t.to(device if device is not None else t.device)

    def __repr__(self) -> str:
        return (f"DDBMPrecond(sigma_data={self.sigma_data}, sigma_source={self.sigma_source}, cov={self.cov}, "
                f"c={self.c}, noise_input={self.noise_input!r}, tau_min={self.tau_min})")
