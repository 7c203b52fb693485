"""Diffusion-bridge samplers: DBIM(η), DBIM high order (Zheng et al. ICLR'25) and DDBM's hybrid Heun sampler
(Zhou et al. ICLR'24), in genlab time.

DDBM/DBIM run τ ∈ [0, T] from the data (τ = 0) to the condition x_T (τ = T); genlab maps ``t = 1 − τ/T`` so the
known condition is x0 (t = 0) and the data x1 (t = 1), and the bridge marginal ``N(a x_T + b x_data, c²)`` is
the path ``x_t = α x0 + β x1 + γ z`` with ``(α, β, γ) = (a, b, c)`` (``reference/interpolants.md`` §5,
``reference/samplers.md`` §5). Grids: :func:`dbim_grid` (DBIM's uniform grid with the booting step) and
:func:`ddbm_grid` (DDBM's Karras grid ending at the data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.interpolants.schedules import DDBMSchedule
from genlab.models.field import Field
from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.implicit import require_capabilities
from genlab.samplers.multistep import MultistepTable, data_form_table, run_multistep
from genlab.samplers.registry import register_sampler
from genlab.samplers.sde import EpsSpec, diffusion_coefficient
from genlab.samplers.semilinear import semilinear_grid
from genlab.utils import NoiseStream

__all__ = ["DBIM", "DBIMHighOrder", "DDBMHeun", "dbim_grid", "dbim_ho_table", "ddbm_grid"]

_F64 = torch.float64


def _bridge_T_tau_min(interpolant: Interpolant, tau_min: float | None) -> tuple[float, float]:
    sched = interpolant.schedule
    if isinstance(sched, DDBMSchedule):
        big_t = float(sched.T)
        default = 1e-4 if sched.kind == "vp" else 0.002
    else:
        big_t, default = 1.0, 1e-4
    tmin = default if tau_min is None else float(tau_min)
    if not 0 <= tmin < big_t:
        raise ValueError(f"tau_min must lie in [0, T={big_t}), got {tmin}")
    return big_t, tmin


def dbim_grid(steps: int, interpolant: Interpolant, *, tau_min: float | None = None, offset: float = 1e-3,
              device: torch.device | str | None = None) -> Tensor:
    """DBIM's grid in genlab time: the booting step from the condition, then uniform in τ.

    DBIM (``sample_dbim``) boots from x_T at τ = T to τ_0 = T − ``offset`` and then runs ``linspace(T − offset,
    τ_min, N)``; in genlab time that is ``[0, offset/T, …, 1 − τ_min/T]`` with ``steps + 1`` points. A
    :class:`DBIM` run on it costs exactly ``steps`` evaluations (the paper's NFE; its N = NFE − 1 DBIM steps).

    Args:
        steps: Number of intervals N (= NFE), ≥ 1.
        interpolant: The bridge (a :class:`~genlab.interpolants.DDBMSchedule` sets T and the default τ_min:
            1e-4 for VP, 0.002 for VE; other bridges use T = 1, τ_min = 1e-4).
        tau_min: Last τ (data side).
        offset: How far below T the first DBIM step starts.
        device: Device.

    Returns:
        ``(steps + 1,)`` float64 increasing times, ``grid[0] = 0``.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    big_t, tmin = _bridge_T_tau_min(interpolant, tau_min)
    if not 0 < offset < big_t - tmin:
        raise ValueError(f"offset must lie in (0, T - tau_min) = (0, {big_t - tmin}), got {offset}")
    taus = torch.linspace(big_t - offset, tmin, steps, dtype=_F64) if steps > 1 else torch.tensor([tmin], dtype=_F64)
    t = torch.cat([torch.zeros(1, dtype=_F64), 1 - taus / big_t])
    return t.to(device)


def ddbm_grid(steps: int, interpolant: Interpolant, *, rho: float = 7.0, tau_min: float | None = None,
              device: torch.device | str | None = None) -> Tensor:
    """DDBM's sampling grid in genlab time: Karras ρ-spacing in τ from T − 1e-4 to τ_min, then τ = 0 appended.

    (DDBM ``get_sigmas_karras(steps, t_min, t_max − 1e-4, ρ)`` + ``append_zero``.) Ends at the data (t = 1), as
    :class:`DDBMHeun` with ``final_euler=True`` expects; NFE = 3·steps − 1 with churn.

    Args:
        steps: Number of intervals N (≥ 2).
        interpolant: The bridge.
        rho: Karras exponent.
        tau_min: Smallest non-zero τ (defaults as in :func:`dbim_grid`).
        device: Device.

    Returns:
        ``(steps + 1,)`` float64 increasing times.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    big_t, tmin = _bridge_T_tau_min(interpolant, tau_min)
    tmin = max(tmin, 1e-12)
    tmax = big_t - 1e-4
    r = torch.linspace(0, 1, steps, dtype=_F64)
    taus = (tmax ** (1 / rho) + r * (tmin ** (1 / rho) - tmax ** (1 / rho))) ** rho
    t = torch.cat([1 - taus / big_t, torch.ones(1, dtype=_F64)])
    return t.to(device)


def _coeff(interpolant: Interpolant, t: Tensor) -> tuple[float, float, float]:
    """(α, β, γ) of the path at the 0-d time ``t`` as Python floats (float64)."""
    c = interpolant.schedule.coeffs(t.reshape(1))
    return float(c.alpha[0]), float(c.beta[0]), float(c.gamma[0])


def dbim_ho_table(interpolant: Interpolant, grid: Tensor, *, order: int = 2,
                  lower_order_final: bool = True) -> MultistepTable:
    """The coefficient table of DBIM high order (Zheng et al. ICLR'25, §4.3, eq. 15) on the steps after the boot.

    Data-form steps of the DBIM ODE with λ = log(β/γ): order min(order, j + 1) at the j-th step (warm-up), first
    order on the last step with ``lower_order_final`` and on any step ending where γ = 0 (h = ∞); order 2 is the
    ``"heun"`` formula φ_2·D', order 3 the exact integral of the quadratic (:func:`data_form_weights`).

    Args:
        interpolant: The bridge.
        grid: ``(N+1,)`` increasing times, the first one with γ > 0 (the boot, if any, is not part of the table).
        order: 2 or 3.
        lower_order_final: First-order last step.

    Returns:
        A data-form :class:`~genlab.samplers.multistep.MultistepTable` with known-source coefficients.

    Raises:
        ValueError: For an order other than 2 or 3.
    """
    if order not in (2, 3):
        raise ValueError(f"order must be 2 or 3, got {order!r}")
    tab = semilinear_grid(interpolant, grid)
    n = tab.t.numel() - 1
    orders = [1 if (lower_order_final and j == n - 1) or float(tab.noise[j + 1]) == 0.0 else min(order, j + 1)
              for j in range(n)]
    return data_form_table(tab, orders, solver_type="heun")


@register_sampler
class DBIM(Sampler):
    """Diffusion Bridge Implicit Models, DBIM(η) (Zheng et al. ICLR'25, Alg. 1, eq. 10).

    On an increasing grid ``t_0 < … < t_N``:

    * **booting** (when γ(t_0) = 0, i.e. t_0 is the condition end): x̂1 = D(x0, t_0), then
      ``x_{t_1} = α_1 x0 + β_1 x̂1 + γ_1 ε_boot`` (one evaluation; ε_boot is the latent used for encoding,
      reconstruction and interpolation, returned in ``aux["eps_boot"]``). Give a fixed ε_boot with the
      ``eps_boot`` argument, otherwise it is the first per-sample draw from ``generator``;
    * **DBIM(η) steps** s → t: :meth:`Interpolant.implicit_step` with ω = η·``markov_omega(s, t)`` =
      η α_t ρ_t √(1 − ρ_t²/ρ_s²), i.e. ``x_t = β_t x̂1 + α_t x0 + √(γ_t² − ω²)(x_s − α_s x0 − β_s x̂1)/γ_s + ωξ``;
      η = 1 is the Markov bridge posterior, η = 0 the deterministic DBIM ODE; no noise on the final step.

    NFE = N exactly: the grid has N + 1 points and the boot consumes ``grid[0] → grid[1]`` (with
    :func:`dbim_grid` this is the paper's NFE). A grid starting at γ > 0 skips the boot (N steps, N evaluations).

    Encoding (a decreasing grid, η = 0 only) runs the DBIM ODE backwards; if it ends at γ = 0 (t = 0) the last
    interval inverts the boot, ``ε_boot = (x_{t_1} − α_1 x0 − β_1 D(x0, 0))/γ_1`` (one evaluation), returned in
    ``aux["eps_boot"]``: sampling again with ``DBIM(eps_boot=...)`` reconstructs the data up to the ODE's
    discretisation error.

    Args:
        eta: η ∈ [0, 1] (> 0 needs a Markovian bridge step: DDBM or Brownian bridge).
        eps_boot: Fixed booting noise ``(B, ...)`` (deterministic generation and reconstruction).
    """

    name: ClassVar[str] = "dbim"
    requires: ClassVar[frozenset[str]] = frozenset({"bridge", "implicit"})
    stochastic: ClassVar[bool] = True

    def __init__(self, *, eta: float = 0.0, eps_boot: Tensor | None = None) -> None:
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {eta}")
        if eps_boot is not None and not (isinstance(eps_boot, Tensor) and eps_boot.is_floating_point()):
            raise TypeError("eps_boot must be a floating-point tensor shaped like the samples, or None")
        self.eta = float(eta)
        self.eps_boot = eps_boot

    def check(self, field: Field) -> None:
        super().check(field)
        if self.eta > 0:
            require_capabilities(self, field, {"markov"}, why=f"with eta={self.eta}")

    def recommended_grid(self, field: Field, steps: int, *, device: torch.device | str | None = None,
                         **options: Any) -> Tensor:
        """DBIM's own grid (:func:`dbim_grid`: the boot, then uniform in τ; ``steps`` evaluations)."""
        return dbim_grid(steps, field.interpolant, device=device, **options)

    # ------------------------------------------------------------------ shared pieces
    def _boot(self, field: CountingField, x: Tensor, x0: Tensor, grid: Tensor, cond: Any | None,
              noise: NoiseStream) -> tuple[Tensor, Tensor, Tensor]:
        """The booting step ``grid[0] → grid[1]``; returns (x_{t_1}, x̂1_boot, ε_boot)."""
        x1_hat = field.evaluate(x, grid[0], cond)("x1")
        if self.eps_boot is not None:
            if self.eps_boot.shape != x.shape:
                raise ValueError(f"eps_boot has shape {tuple(self.eps_boot.shape)}, the samples {tuple(x.shape)}")
            eps_boot = self.eps_boot.to(device=x.device, dtype=x.dtype)
        else:
            eps_boot = noise()
        _, _, g1 = _coeff(field.interpolant, grid[1])
        omega = torch.full((x.shape[0],), g1, dtype=x.dtype, device=x.device)
        x_next = field.interpolant.implicit_step(x, grid[0], grid[1], x0, x1_hat, omega=omega, xi=eps_boot)
        return x_next, x1_hat, eps_boot

    def _check_eps_boot(self, forward: bool, gammas: list[float]) -> None:
        if self.eps_boot is not None and not (forward and gammas[0] == 0.0):
            raise ValueError("eps_boot is only used by a generation grid that starts at the condition (gamma = 0, "
                             "t = 0), e.g. dbim_grid(); drop it or start the grid at t = 0")

    def _unboot(self, field: CountingField, x: Tensor, x0: Tensor, s: Tensor, t: Tensor,
                cond: Any | None) -> Tensor:
        """Invert the boot: ε_boot from x_s (s = t_1) with D evaluated at the condition (x0, t = 0)."""
        x1_boot = field.evaluate(x0, t, cond)("x1")
        a, b, g = _coeff(field.interpolant, s)
        if g <= 0:
            raise ValueError("cannot invert the booting step from a time where gamma = 0")
        return (x - a * x0 - b * x1_boot) / g

    def _prologue(self, field: CountingField, x: Tensor, grid: Tensor, cond: Any | None
                  ) -> tuple[Tensor, bool, list[float]]:
        x0 = field.field.known_source(cond)
        if x0 is None:  # pragma: no cover - guarded by the "bridge" capability
            raise ValueError("DBIM needs the known source x0 as cond")
        forward = bool(grid[-1] > grid[0])
        gammas = [_coeff(field.interpolant, t)[2] for t in grid]
        return x0.to(x.dtype), forward, gammas

    # ------------------------------------------------------------------ DBIM(η)
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
        x0, forward, gammas = self._prologue(field, x, grid, cond)
        n = grid.numel() - 1
        if not forward and self.eta > 0:
            raise ValueError("DBIM encodes (decreasing grid) with eta=0 only: the stochastic step is not invertible")
        noise = NoiseStream(x, generator)
        aux: dict[str, Any] = {}
        start = 0
        self._check_eps_boot(forward, gammas)
        if forward and gammas[0] == 0.0:
            x, x1_hat, eps_boot = self._boot(field, x, x0, grid, cond, noise)
            aux["eps_boot"] = eps_boot
            x = self._report(0, grid, x, callback, trajectory, x1_hat=x1_hat)
            start = 1
        for i in range(start, n):
            s, t = grid[i], grid[i + 1]
            if not forward and i == n - 1 and gammas[i + 1] == 0.0:
                aux["eps_boot"] = self._unboot(field, x, x0, s, t, cond)
                x = x0.clone()
                x = self._report(i, grid, x, callback, trajectory)
                continue
            _, x1_hat = field.evaluate(x, s, cond).endpoints()
            omega: Tensor | float = 0.0
            xi = None
            if self.eta > 0 and i < n - 1:
                omega = self.eta * interp.markov_omega(s, t, x)
                xi = noise()
            x = interp.implicit_step(x, s, t, x0, x1_hat, omega=omega, xi=xi)
            x = self._report(i, grid, x, callback, trajectory, x1_hat=x1_hat)
        return x, aux


@register_sampler
class DBIMHighOrder(DBIM):
    """DBIM 2nd/3rd-order exponential integrator (Zheng et al. ICLR'25, §4.3; ``sample_dbim_high_order``).

    The DBIM ODE (η = 0) is ``d[(x − α x0)/γ] = e^{λ} x̂1 dλ`` with λ = log(β/γ) (:meth:`Interpolant.semilinear`:
    noise = γ, data = β, known = α). Expanding x̂1 in λ around the current step (``reference/samplers.md`` §5):

        x_t = (γ_t/γ_s)x_s + (α_t − α_s γ_t/γ_s)x0
              + β_t[(1 − e^{−h})x̂_s + (e^{−h} + h − 1)D' + (h²/2 − h + 1 − e^{−h})D'']

    with h = λ_t − λ_s and backward differences of the previous x̂1 in λ (order 2: D' = (x̂_s − x̂_{u1})/h1;
    order 3: the 3-point D' and D'' of the reference). The first step after the boot (or the first step) is first
    order, order 3 uses order 2 at its second step, ``lower_order_final`` makes the last step first order (as the
    reference code), and a step ending where γ = 0 is always first order (h = ∞). A first-order step equals
    DBIM(η = 0). Booting is that of :class:`DBIM` (η = 0). Generation only (increasing grid). NFE = N.

    Args:
        order: 2 or 3.
        lower_order_final: First-order last step.
        eps_boot: Fixed booting noise.
    """

    name: ClassVar[str] = "dbim_ho"
    requires: ClassVar[frozenset[str]] = frozenset({"bridge", "semilinear", "implicit"})
    stochastic: ClassVar[bool] = True

    def __init__(self, *, order: int = 2, lower_order_final: bool = True, eps_boot: Tensor | None = None) -> None:
        if order not in (2, 3):
            raise ValueError(f"order must be 2 or 3, got {order!r}")
        super().__init__(eta=0.0, eps_boot=eps_boot)
        self.order = order
        self.lower_order_final = bool(lower_order_final)

    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        """This sampler's :func:`dbim_ho_table` on the steps after the boot (``grid`` starting where γ > 0)."""
        return dbim_ho_table(interpolant, grid, order=self.order, lower_order_final=self.lower_order_final)

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
        x0, forward, gammas = self._prologue(field, x, grid, cond)
        if not forward:
            raise ValueError("dbim_ho generates only (increasing grid); encode with DBIM(eta=0)")
        noise = NoiseStream(x, generator)
        aux: dict[str, Any] = {}
        start = 0
        self._check_eps_boot(forward, gammas)
        if gammas[0] == 0.0:
            x, x1_hat, eps_boot = self._boot(field, x, x0, grid, cond, noise)
            aux["eps_boot"] = eps_boot
            x = self._report(0, grid, x, callback, trajectory, x1_hat=x1_hat)
            start = 1
        if start < grid.numel() - 1:
            table = self.build_table(field.interpolant, grid[start:])

            def report(j: int, x_next: Tensor, x1_hat: Tensor) -> Tensor:
                return self._report(start + j, grid, x_next, callback, trajectory, x1_hat=x1_hat)

            x = run_multistep(field, x, grid[start:], table, cond=cond, x_src=x0, report=report)
        return x, aux


@register_sampler
class DDBMHeun(Sampler):
    """DDBM's hybrid sampler (Zhou et al. ICLR'24, Alg. 1; ``karras_diffusion.sample_heun``) in genlab terms.

    Per interval [t_i, t_{i+1}]:

    1. with churn s > 0, one Euler–Maruyama step of the reverse bridge SDE from t_i to
       t̂ = t_i + s(t_{i+1} − t_i). DDBM's reverse SDE ``dx = [f x − g²(∇log q − h)]dτ + g dw̄`` is exactly the
       stochastic-interpolant forward SDE ``dX = (b + εs)dt + √(2ε)dW`` with ε(t) = ½g(τ)²T (``eps="score_sde"``):
       x ← x + (b + εs)(t̂ − t_i) + √(2ε(t̂ − t_i))ξ, with b the PF-ODE velocity and s the bridge score;
    2. a Heun step of the PF-ODE (= the interpolant velocity for guidance w = 1) from t̂ to t_{i+1}; with
       ``final_euler`` (DDBM, whose grid ends at τ = 0 where the score is singular) the last one is Euler.

    NFE = 3N − 1 with churn and ``final_euler`` (2N − 1 without churn; +1 each without ``final_euler``). Use
    :func:`ddbm_grid` for DDBM's Karras grid. Guidance w ≠ 1 adds ``−T g²(w − 1)·h`` to both drifts (DDBM's VP
    form, ``get_d_vp``: drift ``f x − g²(c·∇log q − w h)`` with c = ½ for the ODE and 1 for the SDE; h =
    ∇log p(x_T | x_τ)); DDBM's VE code weights h differently for w ≠ 1 and is not reproduced. w ≠ 1 needs a
    :class:`~genlab.interpolants.DDBMSchedule` path.

    Args:
        churn: DDBM's ``churn_step_ratio`` s ∈ [0, 1) (default 0.33).
        guidance: w (default 1).
        eps: Diffusion coefficient of the stochastic step (default ``"score_sde"`` = DDBM's ½g²T; any
            :mod:`genlab.samplers.sde` spec).
        final_euler: Last step without Heun correction.
    """

    name: ClassVar[str] = "ddbm_heun"
    requires: ClassVar[frozenset[str]] = frozenset({"bridge", "score", "velocity"})
    stochastic: ClassVar[bool] = True

    def __init__(self, *, churn: float = 0.33, guidance: float = 1.0, eps: EpsSpec = "score_sde",
                 final_euler: bool = True) -> None:
        if not 0.0 <= churn < 1.0:
            raise ValueError(f"churn must lie in [0, 1), got {churn}")
        self.churn = float(churn)
        self.guidance = float(guidance)
        self.eps = eps
        self.final_euler = bool(final_euler)

    def expected_nfe(self, steps: int) -> int | None:
        return (3 if self.churn > 0 else 2) * steps - (1 if self.final_euler else 0)

    def recommended_grid(self, field: Field, steps: int, *, device: torch.device | str | None = None,
                         **options: Any) -> Tensor:
        """DDBM's own grid (:func:`ddbm_grid`: Karras ρ = 7 in τ, then the data end)."""
        return ddbm_grid(steps, field.interpolant, device=device, **options)

    def check(self, field: Field) -> None:
        super().check(field)
        if self.guidance != 1.0 and not isinstance(field.interpolant.schedule, DDBMSchedule):
            raise ValueError(f"guidance={self.guidance} needs a DDBM bridge (DiffusionBridge); use guidance=1")

    def _guidance_term(self, interp: Interpolant, x: Tensor, x0: Tensor, t: Tensor) -> Tensor | None:
        """``−T g²(w − 1) h`` with h = (ᾱ x_T − x)/(α² (ρ_T² − ρ²)) (zero for w = 1)."""
        if self.guidance == 1.0:
            return None
        sched = interp.schedule
        assert isinstance(sched, DDBMSchedule)
        tau = sched.tau(t.reshape(1))
        alpha, rho2, _, d_rho2 = sched.alpha_rho(tau)
        alpha_T, rho2_T, _, _ = sched.alpha_rho(torch.full_like(tau, sched.T))
        g2 = alpha**2 * d_rho2
        denom = alpha**2 * (rho2_T - rho2)
        coef_x = float(-sched.T * g2 * (self.guidance - 1) / denom)
        coef_x0 = float(-sched.T * g2 * (self.guidance - 1) * (alpha / alpha_T) / denom)
        return coef_x0 * x0 - coef_x * x

    def _velocity(self, field: CountingField, x: Tensor, t: Tensor, cond: Any | None, x0: Tensor) -> Tensor:
        v = field.evaluate(x, t, cond)("velocity")
        g = self._guidance_term(field.interpolant, x, x0, t)
        return v if g is None else v + g

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
        if not bool(grid[-1] > grid[0]):
            raise ValueError("DDBM's sampler generates: pass an increasing grid (condition -> data)")
        n = grid.numel() - 1
        if not self.final_euler and _coeff(interp, grid[-1])[2] == 0.0:
            raise ValueError("the grid ends where gamma = 0 (the data end, score singular): pass final_euler=True "
                             "(DDBM's choice) or end the grid before t = 1")
        x0 = field.field.known_source(cond).to(x.dtype)
        noise = NoiseStream(x, generator)
        spec = self.eps
        for i in range(n):
            t, t_next = grid[i], grid[i + 1]
            t_hat = t
            if self.churn > 0:
                t_hat = t + self.churn * (t_next - t)
                h = t_hat - t
                pred = field.evaluate(x, t, cond)
                eps_t = diffusion_coefficient(spec, interp, t.reshape(1))[0]
                drift = pred("velocity") + eps_t.to(x.dtype) * pred("score")
                g = self._guidance_term(interp, x, x0, t)
                if g is not None:
                    drift = drift + g
                x = x + h.to(x.dtype) * drift + torch.sqrt(2 * eps_t * h).to(x.dtype) * noise()
            h = (t_next - t_hat).to(x.dtype)
            d = self._velocity(field, x, t_hat, cond, x0)
            x_pred = x + h * d
            if self.final_euler and i == n - 1:
                x = x_pred
            else:
                d2 = self._velocity(field, x_pred, t_next, cond, x0)
                x = x + h * (d + d2) / 2
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}
