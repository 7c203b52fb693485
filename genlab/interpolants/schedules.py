"""Schedules: the coefficients α(t), β(t), γ(t) of a path ``x_t = α(t)·x0 + β(t)·x1 + γ(t)·z``.

genlab time runs ``t ∈ [0, 1]`` from the source ``x0`` (noise, or the condition of a bridge) to the data ``x1``.
A schedule is a pure function of ``t``; it is evaluated in float64 (the caller casts to the data dtype at the end).

Families (formulas: ``reference/interpolants.md`` §1.1, §5):

* :class:`LinearSchedule` (α = 1−t, β = t, any γ) — stochastic interpolants, rectified flow, IADB, Brownian bridge.
* :class:`TrigSchedule` (α = √(1−γ²)cos(πt/2), β = √(1−γ²)sin(πt/2)).
* :class:`EncoderDecoderSchedule` (α = cos²(πt)·1[t ≤ ½], β = cos²(πt)·1[t > ½], γ = sin²(πt)).
* :class:`LinearVPSchedule` (α = √(1−t²), β = t).
* :class:`VPSchedule` (Song et al.'s β-schedule, or the cosine schedule of Nichol & Dhariwal).
* :class:`VESchedule` (geometric σ from σ_max to σ_min; α = σ, β = 1).
* :class:`DDBMSchedule` (DDBM's VP and VE bridges, Zhou et al. ICLR'24, mapped by t = 1 − τ/T).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from genlab.interpolants.gammas import Gamma, ZeroGamma, make_gamma

__all__ = [
    "SCHEDULES",
    "Coeffs",
    "DDBMSchedule",
    "EncoderDecoderSchedule",
    "LinearSchedule",
    "LinearVPSchedule",
    "Schedule",
    "TrigSchedule",
    "VESchedule",
    "VPSchedule",
    "make_schedule",
]


@dataclass
class Coeffs:
    """Coefficients of ``x_t = alpha·x0 + beta·x1 + gamma·z`` and their time derivatives.

    ``gamma_dgamma`` is γγ̇, finite at the endpoints; use it instead of ``gamma * d_gamma``. ``alpha_dalpha``
    (optional) is αα̇ in closed form for schedules whose α̇ is singular where α vanishes (VP at t = 1).
    """

    alpha: Tensor
    beta: Tensor
    gamma: Tensor
    d_alpha: Tensor
    d_beta: Tensor
    d_gamma: Tensor
    gamma_dgamma: Tensor
    alpha_dalpha: Tensor | None = None

    def to(self, dtype: torch.dtype) -> Coeffs:
        """Cast every field to ``dtype``."""
        return Coeffs(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(dtype)
                         for f in fields(self)})

    @property
    def alpha_dalpha_finite(self) -> Tensor:
        """αα̇ = ½ d(α²)/dt: the schedule's closed form when it gives one (finite where α̇ is infinite, e.g. VP
        at t = 1), else α·α̇."""
        return self.alpha_dalpha if self.alpha_dalpha is not None else self.alpha * self.d_alpha


class Schedule(ABC):
    """A pure function ``t ↦ Coeffs``.

    Subclasses implement :meth:`coeffs`. ``gamma`` tells whether the path carries latent noise ``z``.
    Optional: :meth:`snr_inverse` for grids uniform in log-SNR and :meth:`markov_omega` for the η = 1 step of
    implicit samplers.
    """

    #: The γ of the path (``ZeroGamma`` when the path has no latent noise).
    gamma_fn: Gamma = ZeroGamma()

    @abstractmethod
    def coeffs(self, t: Tensor) -> Coeffs:
        """Evaluate every coefficient at ``t`` (float64 tensor, any shape)."""

    def __call__(self, t: Tensor) -> Coeffs:
        return self.coeffs(t)

    @property
    def has_noise(self) -> bool:
        """Whether γ is not identically zero."""
        return not self.gamma_fn.is_zero

    def markov_omega(self, s: Tensor, t: Tensor) -> Tensor | None:
        """Std ω of the Markovian (η = 1) step from ``s`` to ``t`` when the schedule knows it in closed form.

        The base class returns ``None`` and lets :class:`~genlab.interpolants.Interpolant` use its generic rule.
        """
        return None

    @property
    def describes_path(self) -> bool:
        """Whether (α, β, γ) describe the whole path (``False`` e.g. for a multimarginal path off its face)."""
        return True

    def require_coefficients(self, what: str) -> None:
        """Raise a ``ValueError`` naming ``what`` when :attr:`describes_path` is ``False`` (no-op otherwise).

        Every coefficient-based method of :class:`~genlab.interpolants.Interpolant` calls it first, so a schedule
        that describes only part of a path refuses them in one place.

        Args:
            what: The method that needs the coefficients (for the message).
        """

    def config(self) -> dict:
        """The constructor arguments of this schedule (JSON-serialisable)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class LinearSchedule(Schedule):
    """α = 1 − t, β = t, γ from the γ family.

    With γ ≡ 0 and a Gaussian source this is rectified flow / conditional OT flow matching (Liu et al. 2023;
    Lipman et al. 2023) and IADB (Heitz et al. 2023); with γ = σ√(t(1−t)) it is the Brownian bridge.

    Args:
        gamma: A :class:`Gamma` or its name.
        a: Scale of γ when ``gamma`` is a name.
    """

    def __init__(self, gamma: str | Gamma = "zero", *, a: float = 1.0) -> None:
        self.gamma_fn = make_gamma(gamma, a=a)

    def coeffs(self, t: Tensor) -> Coeffs:
        g = self.gamma_fn(t)
        return Coeffs(1 - t, t, g.gamma, -torch.ones_like(t), torch.ones_like(t), g.d_gamma, g.gamma_dgamma)

    def markov_omega(self, s: Tensor, t: Tensor) -> Tensor | None:
        # Brownian bridge: Cov(γ_s z_s, γ_t z_t) = a·min(s,t)(1 − max(s,t)); ω² = γ_t² − Cov²/γ_s².
        from genlab.interpolants.gammas import BrownianGamma

        if not isinstance(self.gamma_fn, BrownianGamma):
            return None
        a = self.gamma_fn.a
        lo, hi = torch.minimum(s, t), torch.maximum(s, t)
        cov = a * lo * (1 - hi)
        var_s = a * s * (1 - s)
        var_t = a * t * (1 - t)
        omega2 = var_t - torch.where(var_s > 0, cov**2 / var_s.clamp_min(1e-300), torch.zeros_like(var_s))
        return omega2.clamp_min(0).sqrt()

    def config(self) -> dict:
        return {"gamma": self.gamma_fn.name, "a": getattr(self.gamma_fn, "a", 1.0)}


class TrigSchedule(Schedule):
    """α = √(1−γ²)·cos(πt/2), β = √(1−γ²)·sin(πt/2) (SI ``trig`` path; one-sided it is the cosine/VP path).

    Args:
        gamma: A :class:`Gamma` or its name (values must stay below 1).
        a: Scale of γ when ``gamma`` is a name.
    """

    def __init__(self, gamma: str | Gamma = "zero", *, a: float = 1.0) -> None:
        self.gamma_fn = make_gamma(gamma, a=a)

    def coeffs(self, t: Tensor) -> Coeffs:
        g = self.gamma_fn(t)
        r = torch.sqrt(1 - g.gamma**2)
        dr = -g.gamma_dgamma / r
        # cos(π/2) rounds to 6e-17 in float64 (−4e-8 in float32): pin the data end so that α(1) = 0 exactly and
        # λ(1) = +∞, which the exponential integrators and log-SNR grids rely on (sin(0) = 0 is already exact).
        c = torch.where(t == 1, torch.zeros_like(t), torch.cos(math.pi * t / 2))
        s = torch.sin(math.pi * t / 2)
        alpha, beta = r * c, r * s
        d_alpha = dr * c - (math.pi / 2) * r * s
        d_beta = dr * s + (math.pi / 2) * r * c
        return Coeffs(alpha, beta, g.gamma, d_alpha, d_beta, g.d_gamma, g.gamma_dgamma)

    def config(self) -> dict:
        return {"gamma": self.gamma_fn.name, "a": getattr(self.gamma_fn, "a", 1.0)}


class EncoderDecoderSchedule(Schedule):
    """α = cos²(πt)·1[t ≤ ½], β = cos²(πt)·1[t > ½], γ = sin²(πt): x_{1/2} is pure noise (SI ``encoding-decoding``)."""

    def __init__(self) -> None:
        self.gamma_fn = make_gamma("sinesquared")

    def coeffs(self, t: Tensor) -> Coeffs:
        g = self.gamma_fn(t)
        # cos(π/2)² and sin(π), sin(2π) round to 4e-33, 1e-16, −2e-16: x_{1/2} is pure noise exactly, and the
        # derivative vanishes exactly at t ∈ {½, 1}
        half = t == 0.5
        c2 = torch.where(half, torch.zeros_like(t), torch.cos(math.pi * t) ** 2)
        dc2 = torch.where(half | (t == 1), torch.zeros_like(t), -math.pi * torch.sin(2 * math.pi * t))
        first = t <= 0.5
        zero = torch.zeros_like(t)
        return Coeffs(
            torch.where(first, c2, zero),
            torch.where(first, zero, c2),
            g.gamma,
            torch.where(first, dc2, zero),
            torch.where(first, zero, dc2),
            g.d_gamma,
            g.gamma_dgamma,
        )


class LinearVPSchedule(Schedule):
    """α = √(1 − t²), β = t (Meta flow_matching ``LinearVPScheduler``); α̇ is singular at t = 1."""

    def coeffs(self, t: Tensor) -> Coeffs:
        alpha = torch.sqrt((1 - t**2).clamp_min(0))
        d_alpha = -t / alpha
        zero = torch.zeros_like(t)
        return Coeffs(alpha, t, zero, d_alpha, torch.ones_like(t), zero, zero, alpha_dalpha=-t)


class VPSchedule(Schedule):
    """Variance-preserving diffusion as a one-sided interpolant: β(t)² + α(t)² = 1, data at t = 1.

    ``kind="linear"``: Song et al. (ICLR'21) VP-SDE with β(s) = β_min + s(β_max − β_min), s = 1 − t the diffusion
    time: β(t) = exp(−T/2), α(t) = √(1 − e^{−T}), T(t) = ½(1−t)²(β_max−β_min) + (1−t)β_min. Its boundary at t = 0
    is only approximate (β(0) = e^{−5.025} ≈ 0.0066 for the defaults 0.1, 20).

    ``kind="cosine"``: Nichol & Dhariwal (ICML'21) eq. 17, ᾱ(s) = f(s)/f(0), f(s) = cos²(((s + c)/(1 + c))·π/2),
    c = 0.008, continuous in s = 1 − t; β = √ᾱ, α = √(1 − ᾱ). Exact boundaries β(0) = 0 and α(1) = 0: with
    k = π/(2(1 + c)) and u₀ = ck, β = sin(kt)/cos u₀ and α² = sin(ks)·sin(k(s + 2c))/cos²u₀ (the same functions,
    written so that neither end goes through cos(π/2) ≈ 6e-17 and neither cancels near its zero).

    Args:
        kind: ``"linear"`` (Song β-schedule) or ``"cosine"``.
        beta_min: β_min of the linear schedule (paper default 0.1).
        beta_max: β_max of the linear schedule (paper default 20).
        cosine_offset: The offset ``c`` of the cosine schedule (paper default 0.008).
    """

    def __init__(
        self, kind: str = "linear", *, beta_min: float = 0.1, beta_max: float = 20.0, cosine_offset: float = 0.008
    ) -> None:
        if kind not in ("linear", "cosine"):
            raise ValueError(f"VPSchedule: kind must be 'linear' or 'cosine', got {kind!r}")
        if not (0 <= beta_min < beta_max):
            raise ValueError(f"VPSchedule: need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.kind, self.beta_min, self.beta_max, self.cosine_offset = kind, float(beta_min), float(beta_max), float(
            cosine_offset
        )

    def _log_abar(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """log ᾱ (= 2 log β) and its t-derivative."""
        s = 1 - t
        if self.kind == "linear":
            bd = self.beta_max - self.beta_min
            big_t = 0.5 * s**2 * bd + s * self.beta_min
            d_big_t = -(s * bd + self.beta_min)
            return -big_t, -d_big_t
        c = self.cosine_offset
        u = (s + c) / (1 + c) * (math.pi / 2)
        u0 = c / (1 + c) * (math.pi / 2)
        log_abar = 2 * torch.log(torch.cos(u).clamp_min(1e-300)) - 2 * math.log(math.cos(u0))
        d_log_abar = 2 * torch.tan(u) * (math.pi / 2) / (1 + c)  # d/dt = −d/ds; d/ds log cos² u = −2 tan u · u'
        return log_abar, d_log_abar

    def coeffs(self, t: Tensor) -> Coeffs:
        if self.kind == "cosine":
            return self._cosine_coeffs(t)
        log_abar, d_log_abar = self._log_abar(t)
        abar = torch.exp(log_abar)
        beta = torch.exp(0.5 * log_abar)
        d_beta = 0.5 * d_log_abar * beta
        alpha = torch.sqrt((1 - abar).clamp_min(0))
        d_alpha = -0.5 * abar * d_log_abar / alpha  # d/dt √(1−ᾱ) = −ᾱ'/(2√(1−ᾱ))
        zero = torch.zeros_like(t)
        return Coeffs(alpha, beta, zero, d_alpha, d_beta, zero, zero, alpha_dalpha=-0.5 * abar * d_log_abar)

    def _cosine_coeffs(self, t: Tensor) -> Coeffs:
        """The cosine schedule with exact zeros: β = sin(kt)/cos u₀, α² = sin(ks)·sin(k(s + 2c))/cos²u₀.

        π/2 − u = kt and cos²u₀ − cos²u = sin(u − u₀)·sin(u + u₀) with u − u₀ = ks, u + u₀ = k(s + 2c).
        """
        c = self.cosine_offset
        k = (math.pi / 2) / (1 + c)
        cos_u0 = math.cos(c * k)
        s = 1 - t
        beta = torch.sin(k * t) / cos_u0
        d_beta = k * torch.cos(k * t) / cos_u0
        alpha = torch.sqrt((torch.sin(k * s) * torch.sin(k * (s + 2 * c))).clamp_min(0)) / cos_u0
        d_alpha = -beta * d_beta / alpha  # α² + β² = 1; −∞ at t = 1 (α ∝ √s there), as for the linear kind
        zero = torch.zeros_like(t)
        return Coeffs(alpha, beta, zero, d_alpha, d_beta, zero, zero, alpha_dalpha=-beta * d_beta)

    def snr_inverse(self, log_snr: Tensor) -> Tensor:
        """The t at which log(β²/α²) = ``log_snr`` (closed form for both kinds).

        Args:
            log_snr: Log signal-to-noise ratio values.

        Returns:
            Times in [0, 1].
        """
        # log_snr = log ᾱ − log(1−ᾱ) ⇒ log ᾱ = −softplus(−log_snr)
        log_abar = -torch.nn.functional.softplus(-log_snr)
        if self.kind == "linear":
            bd = self.beta_max - self.beta_min
            # ½ s² bd + s β_min = −log ᾱ
            q = -log_abar
            s = (-self.beta_min + torch.sqrt(self.beta_min**2 + 2 * bd * q)) / bd
        else:
            c = self.cosine_offset
            u0 = c / (1 + c) * (math.pi / 2)
            cos_u = torch.exp(0.5 * log_abar) * math.cos(u0)
            s = torch.arccos(cos_u.clamp(-1, 1)) * 2 / math.pi * (1 + c) - c
        return (1 - s).clamp(0, 1)

    def config(self) -> dict:
        return {"kind": self.kind, "beta_min": self.beta_min, "beta_max": self.beta_max,
                "cosine_offset": self.cosine_offset}


class VESchedule(Schedule):
    """Variance-exploding diffusion as a one-sided interpolant: x_t = σ(t)·x0 + x1 with x0 ~ N(0, I).

    σ(t) = σ_min·(σ_max/σ_min)^{1−t} (Song et al. ICLR'21 VE-SDE; EDM's defaults σ_min = 0.002, σ_max = 80).
    The boundary is approximate: α(0) = σ_max ≠ 1 and α(1) = σ_min ≠ 0, as in every VE model.

    Args:
        sigma_min: Smallest noise level (at t = 1).
        sigma_max: Largest noise level (at t = 0).
    """

    def __init__(self, *, sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"VESchedule: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def coeffs(self, t: Tensor) -> Coeffs:
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        sigma = self.sigma_min * torch.exp((1 - t) * log_ratio)
        zero = torch.zeros_like(t)
        return Coeffs(sigma, torch.ones_like(t), zero, -log_ratio * sigma, zero, zero, zero)

    def snr_inverse(self, log_snr: Tensor) -> Tensor:
        """The t at which log(1/σ²) = ``log_snr``."""
        log_sigma = -0.5 * log_snr
        return (1 - (log_sigma - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)).clamp(0, 1)

    def config(self) -> dict:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class DDBMSchedule(Schedule):
    """Denoising diffusion bridge (Zhou et al., ICLR'24, §3; DBIM, Zheng et al., ICLR'25) in genlab time.

    DDBM runs τ ∈ [0, T] from data x_0 (τ = 0) to the condition x_T (τ = T); genlab maps ``t = 1 − τ/T`` so x0 is
    the condition and x1 the data. The bridge marginal is ``N(a_τ x_T + b_τ x_0, c_τ²)`` with
    ``a = (α_τ/α_T)ρ_τ²/ρ_T²``, ``b = α_τ(1 − ρ_τ²/ρ_T²)``, ``c = α_τ ρ_τ √(1 − ρ_τ²/ρ_T²)``; genlab's
    ``(alpha, beta, gamma) = (a, b, c)``.

    * VP: α_τ = exp(−½β_min τ − ¼β_d τ²), ρ_τ² = exp(β_min τ + ½β_d τ²) − 1, T = 1 (defaults β_d = 2,
      β_min = 0.1 from DDBM ``args.sh``).
    * VE: α_τ = 1, ρ_τ = τ, T = σ_max (default 80 as for Edges2Handbags).

    Args:
        kind: ``"vp"`` or ``"ve"``.
        beta_d: VP β_d.
        beta_min: VP β_min.
        sigma_max: VE T = σ_max.
    """

    def __init__(self, kind: str = "vp", *, beta_d: float = 2.0, beta_min: float = 0.1, sigma_max: float = 80.0) -> None:
        if kind not in ("vp", "ve"):
            raise ValueError(f"DDBMSchedule: kind must be 'vp' or 've', got {kind!r}")
        self.kind, self.beta_d, self.beta_min, self.sigma_max = kind, float(beta_d), float(beta_min), float(sigma_max)
        self.T = 1.0 if kind == "vp" else self.sigma_max
        # The bridge noise is c_τ z; it plays the role of γ (not a named γ family member).
        self.gamma_fn = _BridgeGamma()

    def alpha_rho(self, tau: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """α_τ, ρ_τ², and their τ-derivatives (α', (ρ²)') of the underlying diffusion."""
        if self.kind == "vp":
            e = self.beta_min * tau + 0.5 * self.beta_d * tau**2
            alpha = torch.exp(-0.5 * e)
            g2 = self.beta_min + self.beta_d * tau
            d_alpha = -0.5 * g2 * alpha
            rho2 = torch.expm1(e)
            d_rho2 = g2 * torch.exp(e)
            return alpha, rho2, d_alpha, d_rho2
        return torch.ones_like(tau), tau**2, torch.zeros_like(tau), 2 * tau

    def tau(self, t: Tensor) -> Tensor:
        """DDBM time τ = T(1 − t)."""
        return self.T * (1 - t)

    def coeffs(self, t: Tensor) -> Coeffs:
        tau = self.tau(t)
        alpha, rho2, d_alpha, d_rho2 = self.alpha_rho(tau)
        alpha_T, rho2_T, _, _ = self.alpha_rho(torch.full_like(tau, self.T))
        u = rho2 / rho2_T
        du = d_rho2 / rho2_T
        a = alpha / alpha_T * u
        b = alpha * (1 - u)
        w = (rho2 * (1 - u)).clamp_min(0)  # c² / α²
        dw = d_rho2 * (1 - 2 * u)
        c = alpha * torch.sqrt(w)
        da = (d_alpha * u + alpha * du) / alpha_T
        db = d_alpha * (1 - u) - alpha * du
        cdc = alpha * d_alpha * w + alpha**2 * dw / 2  # c·dc/dτ, finite at both ends
        sqrt_w = torch.sqrt(w)
        dc = torch.where(w > 0, d_alpha * sqrt_w + alpha * dw / (2 * sqrt_w.clamp_min(1e-300)),
                         torch.sign(dw) * math.inf)
        dt = -self.T  # dτ/dt
        return Coeffs(a, b, c, da * dt, db * dt, dc * dt, cdc * dt)

    def markov_omega(self, s: Tensor, t: Tensor) -> Tensor | None:
        """DBIM η = 1 std ω = α_t ρ_t √(1 − ρ_t²/ρ_s²) (Zheng et al. ICLR'25, eq. 11), for s earlier than t."""
        alpha_t, rho2_t, _, _ = self.alpha_rho(self.tau(t))
        _, rho2_s, _, _ = self.alpha_rho(self.tau(s))
        ratio = torch.where(rho2_s > 0, rho2_t / rho2_s.clamp_min(1e-300), torch.ones_like(rho2_s))
        return alpha_t * torch.sqrt((rho2_t * (1 - ratio)).clamp_min(0))

    def config(self) -> dict:
        return {"kind": self.kind, "beta_d": self.beta_d, "beta_min": self.beta_min, "sigma_max": self.sigma_max}


class _BridgeGamma(Gamma):
    """Marker γ for bridge schedules whose noise coefficient is computed by the schedule itself."""

    name = "bridge"

    def __call__(self, t: Tensor) -> Coeffs:  # pragma: no cover - never called, the schedule computes c_τ
        raise RuntimeError("the bridge noise coefficient is part of DDBMSchedule.coeffs")


SCHEDULES: dict[str, type[Schedule]] = {
    "linear": LinearSchedule,
    "trig": TrigSchedule,
    "encoder-decoder": EncoderDecoderSchedule,
    "linear-vp": LinearVPSchedule,
    "vp": VPSchedule,
    "ve": VESchedule,
    "ddbm": DDBMSchedule,
}


def make_schedule(name: str | Schedule, **kwargs) -> Schedule:
    """Build a schedule from its name (see :data:`SCHEDULES`) and keyword arguments.

    Args:
        name: Schedule name or an existing :class:`Schedule` (returned unchanged).
        **kwargs: Constructor arguments of that schedule.

    Returns:
        The :class:`Schedule`.
    """
    if isinstance(name, Schedule):
        return name
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for schedule {name!r}: {err}") from None
