"""SDE samplers with a tunable diffusion coefficient ε(t), and EDM's stochastic sampler.

Stochastic interpolants (Albergo, Boffi & Vanden-Eijnden 2023, §2.3; ``reference/interpolants.md`` §1.4) give, for
any ε(t) ≥ 0, the forward and backward SDEs

    dX = b_F dt + √(2ε) dW,  b_F = b + ε s    (t ↑, generation: ρ0 → ρ1)
    dX = b_B dt + √(2ε) dW̄,  b_B = b − ε s    (t ↓, encoding:   ρ1 → ρ0)

with b the PF-ODE velocity and s the score. :class:`EulerMaruyama` and :class:`StochasticHeun` integrate them on
the grid they are given (increasing: forward SDE; decreasing: backward SDE). :class:`EDMChurn` is EDM's Alg. 2
(Karras et al. NeurIPS'22) on a Gaussian-source path, written in genlab time.

ε(t) is given as

* a float (constant ε, the SI paper's choice),
* a callable ``eps(t)`` of a float64 ``(B,)`` time tensor,
* ``"noise_sq"`` (default for non-drift fields): ε(t) = n(t)² with n the coefficient of the path's Gaussian slot
  (α for a Gaussian source, γ for a stochastic interpolant or bridge). Then ε s = −n ẑ stays finite at both ends
  and vanishes where the path is noise-free, so the SDE is well posed on the whole grid;
* ``"score_sde"``: the ε for which the forward SDE is the reverse-time diffusion of the path's own noising process
  (Song et al. ICLR'21). For a Gaussian source ε = α²·dλ/dt with λ = log(β/α) (VP: ½β(s), VE: σσ̇ in diffusion
  time s = 1 − t); for DDBM bridges ε = ½ g(τ)² T (DDBM's reverse bridge SDE, Zhou et al. ICLR'24,
  ``reference/interpolants.md`` §5). It is infinite where β = 0 (e.g. t = 0 for rectified flow): start there at
  t > 0.

``eps_scale`` multiplies whichever ε is chosen. A field of kind ``drift_fwd``/``drift_bwd`` on a two-sided path
(where one field cannot give the score) can only be integrated with the ε it was trained with; with ``eps=None``
that ε is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import DRIFT_SIGNS, Interpolant
from genlab.interpolants.schedules import DDBMSchedule
from genlab.models.field import Field
from genlab.samplers.base import CountingField, Prediction, Sampler, StepInfo, capabilities
from genlab.samplers.registry import register_sampler
from genlab.utils import NoiseStream

__all__ = [
    "EPS_NAMES",
    "EDMChurn",
    "EpsSpec",
    "EulerMaruyama",
    "StochasticHeun",
    "diffusion_coefficient",
    "sigma_to_time",
]

EpsSpec = float | Callable[[Tensor], Tensor | float] | str | None

#: Named diffusion coefficients.
EPS_NAMES: tuple[str, ...] = ("noise_sq", "score_sde")

_DRIFTS = tuple(DRIFT_SIGNS)  # the SDE-drift kinds, from the interpolant vocabulary


def diffusion_coefficient(eps: float | Callable[[Tensor], Tensor | float] | str, interpolant: Interpolant,
                          t: Tensor) -> Tensor:
    """ε(t) of an SDE sampler as a float64 tensor shaped like ``t``.

    Args:
        eps: A float, a callable of ``t``, ``"noise_sq"`` or ``"score_sde"`` (see the module docstring).
        interpolant: The path.
        t: Times (float64).

    Returns:
        ε(t) ≥ 0.

    Raises:
        ValueError: unknown names, negative or non-finite values, or ``"score_sde"`` on a path without a reverse
            diffusion (two-sided interpolants).
    """
    if isinstance(eps, str):
        c = interpolant.schedule.coeffs(t)
        if eps == "noise_sq":
            n = c.alpha if interpolant.gaussian_source else c.gamma
            out = n**2
        elif eps == "score_sde":
            sched = interpolant.schedule
            if interpolant.gaussian_source:
                # g²/2 of the noising process x = β x1 + α ε run backwards in t: α²·d/dt log(β/α)
                out = c.alpha**2 * c.d_beta / c.beta - c.alpha * c.d_alpha
            elif isinstance(sched, DDBMSchedule):
                tau = sched.tau(t)
                alpha, _, _, d_rho2 = sched.alpha_rho(tau)
                out = 0.5 * alpha**2 * d_rho2 * sched.T  # ½ g(τ)² per unit τ, times dτ/dt = T
            else:
                raise ValueError(
                    "eps='score_sde' is defined for Gaussian-source paths (diffusion, flow matching) and DDBM "
                    f"bridges; {interpolant!r} has no reverse diffusion. Pass a float or callable eps"
                )
        else:
            raise ValueError(f"unknown eps {eps!r}; choose one of {EPS_NAMES}, a float or a callable eps(t)")
    elif callable(eps):
        out = torch.as_tensor(eps(t), dtype=t.dtype, device=t.device)
        out = out.expand_as(t) if out.ndim == 0 else out
        if out.shape != t.shape:
            raise ValueError(f"eps(t) must return a scalar or a tensor of shape {tuple(t.shape)}, "
                             f"got {tuple(out.shape)}")
    elif isinstance(eps, (int, float)) and not isinstance(eps, bool):
        out = torch.full_like(t, float(eps))
    else:
        raise TypeError(f"eps must be a float, a callable eps(t) or a name in {EPS_NAMES}, got "
                        f"{type(eps).__name__}")
    if not bool(torch.isfinite(out).all()) or bool((out < 0).any()):
        bad = t[~torch.isfinite(out) | (out < 0)]
        raise ValueError(
            f"the diffusion coefficient eps is negative or not finite at t={float(bad[0]):.4g} (eps={eps!r}); "
            "start/end the grid strictly inside (0, 1) or choose another eps"
        )
    return out


class _SDEBase(Sampler):
    """Shared machinery: ε resolution, drift evaluation and the capability check.

    Needs either a score (then b ± ε·s is formed from one evaluation) or a field that predicts the drift itself
    (two-sided paths whose score a single field does not determine); :meth:`check` enforces it.
    """

    requires: ClassVar[frozenset[str]] = frozenset()
    stochastic: ClassVar[bool] = True

    def __init__(self, *, eps: EpsSpec = None, eps_scale: float = 1.0, final_noise: bool = True) -> None:
        if isinstance(eps, str) and eps not in EPS_NAMES:
            raise ValueError(f"unknown eps {eps!r}; choose one of {EPS_NAMES}, a float or a callable eps(t)")
        if isinstance(eps, (int, float)) and not isinstance(eps, bool) and not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if not eps_scale >= 0:
            raise ValueError(f"eps_scale must be >= 0, got {eps_scale}")
        self.eps = eps
        self.eps_scale = float(eps_scale)
        self.final_noise = bool(final_noise)

    def check(self, field: Field) -> None:
        super().check(field)
        caps = capabilities(field.interpolant, field.kind)
        if "score" not in caps and field.kind not in _DRIFTS:
            raise ValueError(
                f"sampler {self.name!r} needs the score (b_F = b + eps*s): {field.interpolant!r} with a "
                f"{field.kind!r} field does not determine it; use a drift_fwd/drift_bwd field or an ODE sampler"
            )
        if "score" not in caps:
            spec = float(field.eps) if self.eps is None else self.eps
            if not (isinstance(spec, (int, float)) and float(spec) * self.eps_scale == float(field.eps)):
                raise ValueError(
                    f"this {field.kind!r} field on {field.interpolant!r} fixes eps={field.eps} (the score is not "
                    f"determined, so the drift cannot be re-weighted); pass eps=None (or eps={field.eps}) and "
                    "eps_scale=1"
                )

    def _mode(self, field: CountingField, forward: bool) -> str:
        """``"convert"`` (velocity + ε·score) or ``"raw"`` (the field's own drift), checked before any call."""
        f = field.field
        caps = capabilities(f.interpolant, f.kind)
        if "score" in caps:
            return "convert"
        want = "drift_fwd" if forward else "drift_bwd"
        if f.kind != want:
            raise ValueError(
                f"{'generation (increasing grid)' if forward else 'encoding (decreasing grid)'} integrates "
                f"the {want} SDE, but this field is {f.kind!r} on a path whose score is undetermined; train/pass "
                f"a {want!r} field or reverse the grid"
            )
        return "raw"

    def _eps(self, field: CountingField, t: Tensor) -> Tensor:
        """ε at the 0-d time ``t`` (float64 0-d tensor)."""
        f = field.field
        spec = self.eps
        if spec is None:
            spec = float(f.eps) if f.kind in _DRIFTS else "noise_sq"
        tt = t.reshape(1).to(torch.float64 if t.device.type != "mps" else torch.float32)
        return diffusion_coefficient(spec, f.interpolant, tt)[0] * self.eps_scale

    def _diffuse(self, x: Tensor, eps_t: Tensor, h: Tensor, noise: NoiseStream, *, last: bool) -> Tensor:
        """``x + √(2ε|h|)·ξ``: the noise increment of a step (skipped where ε = 0, and on the last step unless
        ``final_noise``)."""
        if (last and not self.final_noise) or not float(eps_t) > 0:
            return x
        return x + torch.sqrt(2 * eps_t * h.abs()).to(x.dtype) * noise()

    @staticmethod
    def _drift(pred: Prediction, mode: str, forward: bool, eps_t: Tensor) -> Tensor:
        if mode == "raw":
            return pred.raw
        v = pred("velocity")
        if float(eps_t) == 0.0:
            return v
        return pred.field.interpolant.sde_drift(v, pred("score"), eps_t, forward=forward)


@register_sampler
class EulerMaruyama(_SDEBase):
    """Euler–Maruyama on the forward (generation) or backward (encoding) SDE of the path.

    ``x_{i+1} = x_i + b_±(x_i, t_i)·h_i + √(2ε(t_i)|h_i|)·ξ_i`` with ``h_i = t_{i+1} − t_i`` and b_± = b ± εs
    (Albergo et al. 2023, §2.3; interflow ``SDEIntegrator.step_forward``/``step_reverse``). NFE = N.

    Args:
        eps: Diffusion coefficient (float, callable ``eps(t)``, ``"noise_sq"``, ``"score_sde"``; default: the
            field's own ε for drift fields, else ``"noise_sq"``).
        eps_scale: Multiplier of ε.
        final_noise: Add noise on the last step too (textbook EM). ``False`` ends with a deterministic drift step,
            as score-SDE samplers do to avoid leaving √(2ε h) of noise in the output.
    """

    name: ClassVar[str] = "euler_maruyama"

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: torch.Generator | None,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        n = grid.numel() - 1
        forward = bool(grid[-1] > grid[0])
        mode = self._mode(field, forward)
        noise = NoiseStream(x, generator)
        for i in range(n):
            t, h = grid[i], grid[i + 1] - grid[i]
            eps_t = self._eps(field, t)
            drift = self._drift(field.evaluate(x, t, cond), mode, forward, eps_t)
            x = x + h.to(x.dtype) * drift
            x = self._diffuse(x, eps_t, h, noise, last=i == n - 1)
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}


@register_sampler
class StochasticHeun(_SDEBase):
    """Stochastic Heun step of the stochastic-interpolant code (interflow ``SDEIntegrator.step_forward_heun``).

    ``x̂ = x + √(2ε|h|)ξ``; ``K1 = b_±(x̂, t_K)``; ``K2 = b_±(x̂ + h K1, t + h)``; ``x ← x̂ + ½h(K1 + K2)``.
    With ``variant="interflow"`` (default, as in the reference code) both drifts are taken at the end time
    ``t_K = t + h``; the code cites EDM Alg. 2, which evaluates K1 at the start ``t_K = t`` — that is
    ``variant="edm"``, whose ε → 0 limit is exactly Heun's method (order 2). The interflow placement is only first
    order in the ODE limit and evaluates the drift at the grid's last time (keep it inside (0, 1) where the score
    is singular at the ends). NFE = 2N.

    Args:
        eps: Diffusion coefficient (see :class:`EulerMaruyama`).
        eps_scale: Multiplier of ε.
        final_noise: Inject noise before the last step too.
        variant: ``"interflow"`` or ``"edm"``.
    """

    name: ClassVar[str] = "sde_heun"

    def __init__(self, *, eps: EpsSpec = None, eps_scale: float = 1.0, final_noise: bool = True,
                 variant: str = "interflow") -> None:
        super().__init__(eps=eps, eps_scale=eps_scale, final_noise=final_noise)
        if variant not in ("interflow", "edm"):
            raise ValueError(f"variant must be 'interflow' or 'edm', got {variant!r}")
        self.variant = variant

    def expected_nfe(self, steps: int) -> int | None:
        return 2 * steps

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: torch.Generator | None,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        n = grid.numel() - 1
        forward = bool(grid[-1] > grid[0])
        mode = self._mode(field, forward)
        noise = NoiseStream(x, generator)
        for i in range(n):
            t, t_next = grid[i], grid[i + 1]
            h = t_next - t
            eps_t = self._eps(field, t)
            x = self._diffuse(x, eps_t, h, noise, last=i == n - 1)
            t_k1 = t_next if self.variant == "interflow" else t
            eps_k1 = self._eps(field, t_k1)
            k1 = self._drift(field.evaluate(x, t_k1, cond), mode, forward, eps_k1)
            x_pred = x + h.to(x.dtype) * k1
            eps_next = self._eps(field, t_next)
            k2 = self._drift(field.evaluate(x_pred, t_next, cond), mode, forward, eps_next)
            x = x + (h / 2).to(x.dtype) * (k1 + k2)
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}


def sigma_to_time(interpolant: Interpolant, sigma: Tensor, *, t_max: Tensor | float) -> Tensor:
    """The time where the noise-to-signal ratio σ = α/β = e^{−λ} of a Gaussian-source path equals ``sigma``.

    Searches [0, ``t_max``] (σ decreases in t); ratios above σ(0) give 0. Uses the schedule's closed-form
    ``snr_inverse`` when it has one, else bisection on λ(t) (:meth:`Interpolant.time_at_lam`).

    Args:
        interpolant: Gaussian-source path.
        sigma: Target ratios (float64).
        t_max: Upper end of the search.

    Returns:
        Times (float64), same shape as ``sigma``.
    """
    t = interpolant.time_at_lam(-torch.log(sigma), t_lo=0.0, t_hi=float(t_max))
    return t.clamp(0.0, float(t_max))


@register_sampler
class EDMChurn(Sampler):
    """EDM's stochastic sampler (Karras et al. NeurIPS'22, Alg. 2) on a Gaussian-source path, in genlab time.

    EDM works in the scaled variable x̃ = x/β = x1 + σ·ε with σ = α/β the noise-to-signal ratio (σ = e^{−λ};
    ``reference/samplers.md`` §0, §2). Per step i (σ_i = σ(t_i)):

    1. churn: γ_i = min(S_churn/N, √2 − 1) if S_tmin ≤ σ_i ≤ S_tmax else 0; σ̂ = σ_i(1 + γ_i) is a *higher*
       noise level, i.e. an earlier time t̂ = σ⁻¹(σ̂) < t_i (found by ``snr_inverse`` or bisection, and clamped at
       t = 0, where σ̂ is capped at σ(0)); x̃̂ = x̃_i + √(σ̂² − σ_i²)·S_noise·ξ;
    2. Euler in σ: d = ε̂(β(t̂)x̃̂, t̂) (the ``x0`` prediction, = (x̃ − D)/σ), x̃_{i+1} = x̃̂ + (σ_{i+1} − σ̂)d;
    3. Heun correction with d' = ε̂(β_{i+1}x̃_{i+1}, t_{i+1}): x̃_{i+1} = x̃̂ + (σ_{i+1} − σ̂)(d + d')/2,
       skipped on the last step with ``final_euler=True`` (EDM, whose grids end at σ = 0, i.e. t = 1).

    Then x_{i+1} = β_{i+1} x̃_{i+1}. Defaults are EDM's stochastic settings for ImageNet-64 (paper Table 5 /
    ``generate.py`` example: S_churn = 40, S_tmin = 0.05, S_tmax = 50, S_noise = 1.003; S_churn = 0 is the
    deterministic Alg. 1). S_tmin/S_tmax are in σ units. NFE = 2N (2N − 1 with ``final_euler``). The grid must
    increase and start where β > 0 (finite σ); a grid ending at σ = 0 needs ``final_euler=True``.

    Args:
        s_churn: Total churn S_churn.
        s_tmin: Lowest σ that gets churn.
        s_tmax: Highest σ that gets churn.
        s_noise: Noise inflation S_noise.
        final_euler: Skip the correction on the last step.
    """

    name: ClassVar[str] = "edm"
    requires: ClassVar[frozenset[str]] = frozenset({"gaussian_source", "velocity"})
    stochastic: ClassVar[bool] = True
    #: EDM's own ρ = 7 grid (Karras et al. 2022, eq. 5), inside the ends where σ̃ is finite.
    default_grid: ClassVar[str] = "karras"

    def __init__(self, *, s_churn: float = 40.0, s_tmin: float = 0.05, s_tmax: float = 50.0, s_noise: float = 1.003,
                 final_euler: bool = False) -> None:
        if not s_churn >= 0:
            raise ValueError(f"s_churn must be >= 0, got {s_churn}")
        if not (0 <= s_tmin <= s_tmax):
            raise ValueError(f"need 0 <= s_tmin <= s_tmax, got {s_tmin}, {s_tmax}")
        if not s_noise >= 0:
            raise ValueError(f"s_noise must be >= 0, got {s_noise}")
        self.s_churn, self.s_tmin, self.s_tmax, self.s_noise = float(s_churn), float(s_tmin), float(s_tmax), float(
            s_noise)
        self.final_euler = bool(final_euler)

    def expected_nfe(self, steps: int) -> int | None:
        return 2 * steps - (1 if self.final_euler else 0)

    @staticmethod
    def _sigma_beta(interpolant: Interpolant, t: Tensor) -> tuple[Tensor, Tensor]:
        c = interpolant.schedule.coeffs(t.reshape(1))
        return (c.alpha / c.beta)[0], c.beta[0]

    def _sample(
        self,
        field: CountingField,
        x: Tensor,
        grid: Tensor,
        *,
        cond: Any | None,
        generator: torch.Generator | None,
        callback: Callable[[StepInfo], None] | None,
        trajectory: list[Tensor] | None,
    ) -> tuple[Tensor, dict[str, Any]]:
        interp = field.interpolant
        n = grid.numel() - 1
        if not bool(grid[-1] > grid[0]):
            raise ValueError("EDM's sampler generates: pass an increasing grid (source -> data)")
        sig0, _ = self._sigma_beta(interp, grid[0])
        if not math.isfinite(float(sig0)):
            raise ValueError(f"EDM needs a finite noise-to-signal ratio at the first grid time t={float(grid[0]):.4g}"
                             " (beta = 0 there); start the grid at t > 0 (e.g. grids.karras)")
        sig_end, _ = self._sigma_beta(interp, grid[-1])
        if float(sig_end) == 0.0 and not self.final_euler:
            raise ValueError("the grid ends where sigma = 0 (the data end); pass final_euler=True (EDM's choice) "
                             "or end the grid before t = 1")
        sig_start_path, _ = self._sigma_beta(interp, torch.zeros_like(grid[0]))
        gamma_max = min(self.s_churn / n, math.sqrt(2) - 1)
        noise = NoiseStream(x, generator)
        for i in range(n):
            t, t_next = grid[i], grid[i + 1]
            sig, beta = self._sigma_beta(interp, t)
            sig_next, beta_next = self._sigma_beta(interp, t_next)
            x_s = x / beta.to(x.dtype)
            gamma = gamma_max if self.s_tmin <= float(sig) <= self.s_tmax else 0.0
            t_hat, sig_hat = t, sig
            if gamma > 0:
                target = sig * (1 + gamma)
                if math.isfinite(float(sig_start_path)) and float(target) >= float(sig_start_path):
                    t_hat = torch.zeros_like(t)
                else:
                    t_hat = sigma_to_time(interp, target.reshape(1), t_max=t)[0]
                sig_hat, _ = self._sigma_beta(interp, t_hat)
                extra = torch.sqrt((sig_hat**2 - sig**2).clamp_min(0))
                x_s = x_s + (extra * self.s_noise).to(x.dtype) * noise()
            _, beta_hat = self._sigma_beta(interp, t_hat)
            d = field.evaluate(x_s * beta_hat.to(x.dtype), t_hat, cond)("x0")
            step = (sig_next - sig_hat).to(x.dtype)
            x_next = x_s + step * d
            if not (self.final_euler and i == n - 1):
                d2 = field.evaluate(x_next * beta_next.to(x.dtype), t_next, cond)("x0")
                x_next = x_s + step * (d + d2) / 2
            x = x_next * beta_next.to(x.dtype)
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}
