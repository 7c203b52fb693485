"""A discrete (DDPM-style) variance-preserving schedule ``ᾱ_n, n = 0..T−1`` seen as a continuous genlab schedule.

Diffusers' ε-models and schedulers (``DDPMScheduler``, ``DPMSolverMultistepScheduler``, ``DEISMultistepScheduler``)
index the noise level by an integer training timestep ``n`` (0 = least noise) with ``ᾱ_n = Π_{k≤n}(1 − β_k)``
(Ho et al. NeurIPS'20, §2; diffusers' default: β linear from 1e-4 to 0.02 over T = 1000 steps). genlab time runs from
noise (t = 0) to data (t = 1), so this module fixes one exact mapping between the two:

    t = 1 − (n + 1)/T        ⇔        n = T(1 − t) − 1,

and extends the table by ``ᾱ_{−1} := 1`` (clean data) at t = 1, so t ∈ [0, 1] covers n ∈ [−1, T − 1]. Between integer
timesteps log ᾱ is linear in n (hence in t). Integer timesteps therefore land on the table values exactly (a final
σ = 0 in diffusers is t = 1; diffusers' ``final_sigmas_type="sigma_min"`` is n = 0, i.e. t = 1 − 1/T), and the
continuous schedule can drive every genlab sampler. As for any VP path, β = √ᾱ (signal) and α = √(1 − ᾱ) (noise).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.interpolants.schedules import Coeffs, Schedule

__all__ = ["DiscreteVPSchedule"]

#: Distance (in timesteps) under which a continuous n is snapped to the nearest integer (float64 round-off of t ↔ n).
_SNAP = 1e-9


class DiscreteVPSchedule(Schedule):
    """Discrete VP schedule from a table of cumulative products ``ᾱ_n`` (``alphas_cumprod`` in diffusers).

    Args:
        alphas_cumprod: ``(T,)`` values in (0, 1], strictly decreasing in n (float32 tables are kept exactly: they are
            converted to float64 without rounding).

    Example:
        >>> sched = DiscreteVPSchedule.from_betas(torch.linspace(1e-4, 0.02, 1000))  # doctest: +SKIP
        >>> t = sched.timestep_to_t(torch.tensor([999, 500, 0]))  # doctest: +SKIP
    """

    def __init__(self, alphas_cumprod: Tensor) -> None:
        if not isinstance(alphas_cumprod, Tensor):
            alphas_cumprod = torch.as_tensor(alphas_cumprod)
        if alphas_cumprod.ndim != 1 or alphas_cumprod.numel() < 2:
            raise ValueError(f"alphas_cumprod must be a 1-D table of at least 2 values, got shape "
                             f"{tuple(alphas_cumprod.shape)}")
        ac = alphas_cumprod.detach().to(device="cpu", dtype=torch.float64)
        if not bool(torch.isfinite(ac).all()) or bool(((ac <= 0) | (ac > 1)).any()):
            raise ValueError("alphas_cumprod values must lie in (0, 1]")
        if not bool((ac[1:] < ac[:-1]).all()):
            raise ValueError("alphas_cumprod must be strictly decreasing in the timestep n (more noise as n grows); "
                             "pass the table in diffusers order (n = 0 first)")
        self.alphas_cumprod = ac
        self.num_train_timesteps = int(ac.numel())
        # log ᾱ on the extended grid n = −1, 0, ..., T−1 (ᾱ_{−1} = 1).
        self._log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), torch.log(ac)])

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_betas(cls, betas: Tensor) -> DiscreteVPSchedule:
        """Build from per-step variances β_n: ``ᾱ_n = Π_{k≤n}(1 − β_k)`` (computed in float64)."""
        b = torch.as_tensor(betas).to(torch.float64)
        if b.ndim != 1 or bool(((b <= 0) | (b >= 1)).any()):
            raise ValueError("betas must be a 1-D table of values in (0, 1)")
        log_abar = torch.cumsum(torch.log1p(-b), 0)
        return cls._with_log_table(torch.exp(log_abar), log_abar)

    @classmethod
    def from_sigmas(cls, sigmas: Tensor) -> DiscreteVPSchedule:
        """Build from noise-to-signal ratios σ_n = √((1 − ᾱ_n)/ᾱ_n) (diffusers' ``sigmas`` over all T timesteps).

        Use it to reproduce a scheduler's float32-rounded σ's exactly: ``ᾱ = 1/(1 + σ²)`` in float64.
        """
        s = torch.as_tensor(sigmas).to(torch.float64)
        if s.ndim != 1 or bool((s <= 0).any()):
            raise ValueError("sigmas must be a 1-D table of positive values (one per training timestep)")
        return cls._with_log_table(1.0 / (1.0 + s**2), -torch.log1p(s**2))

    @classmethod
    def _with_log_table(cls, alphas_cumprod: Tensor, log_abar: Tensor) -> DiscreteVPSchedule:
        """Build from ᾱ and an accurately computed log ᾱ (keeps 1 − ᾱ exact to rounding where ᾱ ≈ 1)."""
        obj = cls(alphas_cumprod)
        obj._log_abar = torch.cat([torch.zeros(1, dtype=torch.float64), log_abar.to(torch.float64)])
        return obj

    # ------------------------------------------------------------------ t <-> n
    def timestep_to_t(self, n: Tensor | float) -> Tensor:
        """genlab time of (possibly fractional) timestep(s) ``n ∈ [−1, T−1]``: ``t = 1 − (n + 1)/T`` (float64)."""
        nn_ = torch.as_tensor(n).to(torch.float64)
        if bool(((nn_ < -1) | (nn_ > self.num_train_timesteps - 1)).any()):
            raise ValueError(f"timesteps must lie in [-1, {self.num_train_timesteps - 1}]")
        return 1.0 - (nn_ + 1.0) / self.num_train_timesteps

    def t_to_timestep(self, t: Tensor | float) -> Tensor:
        """Continuous timestep ``n = T(1 − t) − 1`` of genlab time(s) ``t`` (float64)."""
        tt = torch.as_tensor(t).to(torch.float64)
        return self.num_train_timesteps * (1.0 - tt) - 1.0

    def _locate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Segment index k (into the extended table, 0 ↔ n = −1) and fraction in [0, 1] of each t."""
        n = self.t_to_timestep(t)
        near = n.round()
        n = torch.where((n - near).abs() < _SNAP, near, n).clamp(-1.0, self.num_train_timesteps - 1.0)
        k = torch.floor(n).clamp(-1, self.num_train_timesteps - 2)
        frac = n - k
        return (k + 1).long(), frac

    # ------------------------------------------------------------------ schedule
    def coeffs(self, t: Tensor) -> Coeffs:
        table = self._log_abar.to(t.device)
        idx, frac = self._locate(t)
        lo, hi = table[idx], table[idx + 1]
        log_abar = lo + frac.to(t.dtype) * (hi - lo)
        d_log_abar = (hi - lo) * (-self.num_train_timesteps)  # d/dt = (dn/dt) d/dn, dn/dt = −T
        abar = torch.exp(log_abar)
        beta = torch.exp(0.5 * log_abar)
        one_minus = -torch.expm1(log_abar)  # 1 − ᾱ, accurate near ᾱ = 1; +0 (not −0) at t = 1
        alpha = torch.sqrt(torch.where(one_minus > 0, one_minus, torch.zeros_like(one_minus)))
        d_beta = 0.5 * d_log_abar * beta
        d_alpha = -0.5 * abar * d_log_abar / alpha
        zero = torch.zeros_like(t)
        return Coeffs(alpha.to(t.dtype), beta.to(t.dtype), zero, d_alpha.to(t.dtype), d_beta.to(t.dtype), zero, zero,
                      alpha_dalpha=(-0.5 * abar * d_log_abar).to(t.dtype))

    def snr_inverse(self, log_snr: Tensor) -> Tensor:
        """The t at which log(β²/α²) = ``log_snr`` (exact inverse of the piecewise-linear log ᾱ)."""
        log_abar = -torch.nn.functional.softplus(-log_snr.to(torch.float64))
        table = self._log_abar.to(log_snr.device)
        neg = -table  # increasing in the extended index
        target = (-log_abar).clamp(float(neg[0]), float(neg[-1]))
        j = torch.searchsorted(neg, target.contiguous(), right=False).clamp(1, neg.numel() - 1)
        lo, hi = neg[j - 1], neg[j]
        frac = ((target - lo) / (hi - lo)).clamp(0, 1)
        n = (j - 1).to(torch.float64) - 1.0 + frac
        return (1.0 - (n + 1.0) / self.num_train_timesteps).clamp(0, 1).to(log_snr.dtype)

    def config(self) -> dict:
        return {"alphas_cumprod": self.alphas_cumprod.tolist()}

    def __repr__(self) -> str:
        return (f"DiscreteVPSchedule(T={self.num_train_timesteps}, alphas_cumprod=[{float(self.alphas_cumprod[0]):.6g}"
                f" ... {float(self.alphas_cumprod[-1]):.6g}])")
