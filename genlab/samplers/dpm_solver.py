"""DPM-Solver++ (Lu, Zhou, Bao, Chen, Li & Zhu 2022, arXiv:2211.01095): exponential integrators in data form.

The probability-flow ODE of any path with semilinear structure has the exact solution (``reference/samplers.md``
§0 and §5, written with genlab's :class:`~genlab.interpolants.Semilinear` coefficients n = noise, d = data,
k = known source, λ = log(d/n))

    x_t = (n_t/n_s)·x_s + (k_t − k_s·n_t/n_s)·x_src + n_t ∫_{λ_s}^{λ_t} e^{λ} x̂1(x_λ, λ) dλ,

where the known-source term exists on bridges only (DDBM/DBIM, x_src = the condition) and vanishes for a Gaussian
source. With ``h = λ_t − λ_s`` and x̂1 expanded in λ around λ_s as x̂1_s + D'·u + D''·u²/2 the integral is
``d_t·[φ1·x̂1_s + φ2·D' + φ3·D'']`` with φ1 = 1 − e^{−h}, φ2 = e^{−h} − 1 + h, φ3 = h²/2 − h + 1 − e^{−h}
(as in DBIM high order, Zheng et al. ICLR'25; ``reference/samplers.md`` §5). The samplers differ in how they estimate D', D'':

* ``dpmpp_1s`` — first order (D' = 0): DDIM written in data form (Lu et al. 2022).
* ``dpmpp_2m`` — multistep second order (Alg. 2): ``solver_type="midpoint"`` uses
  φ1·(x̂1_s + (h/(2h_1))(x̂1_s − x̂1_{s−1})) (k-diffusion ``sample_dpmpp_2m`` ≡ diffusers ``"midpoint"``); ``"heun"``
  uses φ2·(x̂1_s − x̂1_{s−1})/h_1 (diffusers' variant; DBIM order 2).
* ``dpmpp_2s`` — singlestep second order (Alg. 1, r = ½): one extra evaluation at λ_s + r·h per step.
* ``dpmpp_3m`` — multistep third order with the **Taylor-correct** D'' = 2·(divided difference); diffusers' and
  the original DPM-Solver 3M use half of it and are only second order (``reference/samplers.md`` §2). This is the
  exact integral of the quadratic through the last three data predictions.

The first step of a multistep method is first order (warm-up), and ``lower_order_final`` lowers the last steps as
diffusers does (order 1 on the final step, ≤ 2 on the one before) — by default only for grids of fewer than 15
steps. A step that lands on the data end (noise coefficient 0, λ = +∞) is first order and returns the data
prediction (diffusers' ``final_sigmas_type="zero"``). A step that starts at λ = −∞ (e.g. rectified flow at t = 0)
is an exact first-order step from pure noise. A multistep step whose λ-step h is more than
:attr:`DPMSolverPPMultistep.max_step_ratio` (2) times the previous one h₁ is first order (an order-3 step with
|h₁| > 2|h₂| is second order): the polynomial in λ through the past predictions would be extrapolated far beyond
its nodes, and x̂1, which saturates in λ towards the data end, overshot. Without this rule the last step of a
uniform-t grid ending at t = 0.999 (h/h₁ ≈ 4–6 on rectified flow, VP, trig) dominates the error at any N, and a
step onto an end whose noise coefficient only rounds to zero (λ ≈ 37 for cos(π/2) ≈ 6e-17) wrecks the sample.
Log-SNR grids (ratio 1), Karras grids (≤ 1.5 from 10 steps) and diffusers' timestep grids (≤ 1.62) keep their
orders. Grids may also decrease (encoding, h < 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.multistep import MultistepTable, TableSampler, combine, data_form_table, phi_functions
from genlab.samplers.registry import register_sampler
from genlab.samplers.semilinear import (
    SemilinearGrid,
    check_lower_order_final,
    multistep_orders,
    semilinear_grid,
)

__all__ = [
    "DPMSolverPP1S",
    "DPMSolverPP2M",
    "DPMSolverPP2S",
    "DPMSolverPP3M",
    "DPMSolverPPMultistep",
    "dpmpp_orders",
    "dpmpp_table",
    "phi_functions",
]

_SOLVER_TYPES = ("midpoint", "heun")


def dpmpp_orders(tab: SemilinearGrid, order: int, lower_order_final: bool | None, *,
                 max_step_ratio: float = 2.0) -> list[int]:
    """Order used at each step of DPM-Solver++ kM on a grid (warm-up, ``lower_order_final``, infinite λ, step ratio).

    Args:
        tab: Semilinear coefficients of the grid.
        order: Maximal order k (1, 2 or 3).
        lower_order_final: See :class:`DPMSolverPPMultistep`.
        max_step_ratio: Largest |h/h₁| at which a step keeps order ≥ 2 (see the module docstring).

    Returns:
        One order per step.
    """
    lam = [float(v) for v in tab.lam]
    orders = []
    for i, p in enumerate(multistep_orders(order, tab.t.numel() - 1, lower_order_final)):
        if not math.isfinite(lam[i + 1] - lam[i]):
            p = 1
        for k in range(1, p):
            if not math.isfinite(lam[i - k]):
                p = k
                break
        steps = [lam[i + 1 - k] - lam[i - k] for k in range(p)]  # h, h₁, h₂ (finite here)
        for k in range(1, p):
            if abs(steps[k - 1]) > max_step_ratio * abs(steps[k]):
                p = k
                break
        orders.append(p)
    return orders


def dpmpp_table(interpolant: Interpolant, grid: Tensor, *, order: int = 2, solver_type: str = "midpoint",
                lower_order_final: bool | None = None, max_step_ratio: float = 2.0,
                name: str = "dpmpp_multistep") -> MultistepTable:
    """The coefficient table of DPM-Solver++ kM (Lu et al. 2022, Alg. 2; Taylor-correct 3M) on ``grid``.

    Args:
        interpolant: A path with semilinear structure.
        grid: ``(N+1,)`` times.
        order: 1, 2 or 3.
        solver_type: ``"midpoint"`` or ``"heun"`` (second-order formula).
        lower_order_final: See :class:`DPMSolverPPMultistep`.
        max_step_ratio: See :func:`dpmpp_orders`.
        name: Sampler name for error messages.

    Returns:
        A data-form :class:`~genlab.samplers.multistep.MultistepTable`.

    Raises:
        ValueError: For an order outside {1, 2, 3}, an unknown ``solver_type``, or a grid step that starts where
            the noise coefficient is 0.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    if solver_type not in _SOLVER_TYPES:
        raise ValueError(f"solver_type must be one of {_SOLVER_TYPES}, got {solver_type!r}")
    tab = semilinear_grid(interpolant, grid)
    tab.check_steps_from(name)
    orders = dpmpp_orders(tab, order, lower_order_final, max_step_ratio=max_step_ratio)
    return data_form_table(tab, orders, solver_type=solver_type)


class _DataFormSampler(Sampler):
    """Shared set-up of the data-form exponential integrators: coefficient table and checks."""

    requires: ClassVar[frozenset[str]] = frozenset({"semilinear"})
    #: DPM-Solver's recommended "logSNR" grid (Lu et al. 2022, §3.3), inside the ends where λ is finite.
    default_grid: ClassVar[str] = "log_snr"

    def _table(self, field: CountingField, grid: Tensor) -> SemilinearGrid:
        tab = semilinear_grid(field.interpolant, grid)
        tab.check_steps_from(self.name)
        return tab

    @staticmethod
    def _known_source(field: CountingField, cond: Any) -> Tensor | None:
        return field.field.known_source(cond)

    @staticmethod
    def _transfer(tab: SemilinearGrid, s: int, noise_next: float, known_next: float | None) -> tuple[float, float]:
        """(n_t/n_s, k_t − k_s·n_t/n_s) for a step from grid index ``s``."""
        ratio = noise_next / float(tab.noise[s])
        known = 0.0
        if tab.known is not None and known_next is not None:
            known = known_next - float(tab.known[s]) * ratio
        return ratio, known


class DPMSolverPPMultistep(_DataFormSampler, TableSampler):
    """DPM-Solver++ multistep of order 1, 2 or 3 in data form (Lu et al. 2022, Alg. 2; Taylor-correct order 3).

    Needs the data prediction x̂1 (any field kind is converted exactly; one evaluation per step). Runs on every
    path with semilinear structure: Gaussian-source paths (VP, VE, rectified flow, trig, …) and bridges with a known
    source (DDBM), where the known-source term of the exact solution is kept (DBIM ODE form).

    Args:
        order: 1, 2 or 3.
        solver_type: Second-order formula: ``"midpoint"`` (k-diffusion / diffusers default) or ``"heun"``
            (diffusers' alternative, equal to DBIM order 2). Used by order 2 and by the order-2 steps of order 3.
        lower_order_final: Lower the order of the last steps (final step 1, the one before ≤ 2), as diffusers'
            ``lower_order_final=True``. ``None`` (default) does it only on grids of fewer than 15 steps, which is
            exactly diffusers' rule; ``True``/``False`` force it on/off.
    """

    name: ClassVar[str] = "dpmpp_multistep"
    #: Largest |h/h₁| (λ-step over the previous λ-step) at which a step keeps order ≥ 2; an order-3 step also needs
    #: |h₁/h₂| within it to keep order 3.
    max_step_ratio: ClassVar[float] = 2.0

    def __init__(self, *, order: int = 2, solver_type: str = "midpoint", lower_order_final: bool | None = None) -> None:
        if order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
        if solver_type not in _SOLVER_TYPES:
            raise ValueError(f"solver_type must be one of {_SOLVER_TYPES}, got {solver_type!r}")
        self.order = int(order)
        self.solver_type = solver_type
        self.lower_order_final = check_lower_order_final(lower_order_final)

    def step_orders(self, tab: SemilinearGrid) -> list[int]:
        """Order actually used at each step of a grid (warm-up, ``lower_order_final``, infinite λ, step ratio)."""
        return dpmpp_orders(tab, self.order, self.lower_order_final, max_step_ratio=self.max_step_ratio)

    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        """This sampler's :func:`dpmpp_table` on ``grid``."""
        return dpmpp_table(interpolant, grid, order=self.order, solver_type=self.solver_type,
                           lower_order_final=self.lower_order_final, max_step_ratio=self.max_step_ratio,
                           name=self.name)

    def _aux(self, table: MultistepTable) -> dict[str, Any]:
        return {"orders": list(table.orders)}


@register_sampler
class DPMSolverPP1S(DPMSolverPPMultistep):
    """DPM-Solver++(1S): first-order data-form exponential integrator, i.e. DDIM (Lu et al. 2022).

    One evaluation per step; equals :meth:`Interpolant.implicit_step` with ω = 0 up to rounding, on Gaussian-source
    paths and bridges (DBIM η = 0).
    """

    name: ClassVar[str] = "dpmpp_1s"

    def __init__(self) -> None:
        super().__init__(order=1, lower_order_final=False)


@register_sampler
class DPMSolverPP2M(DPMSolverPPMultistep):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): multistep second order in data form, one evaluation per step.

    Args:
        solver_type: ``"midpoint"`` (default; k-diffusion ``sample_dpmpp_2m`` and diffusers' default) or ``"heun"``.
        lower_order_final: See :class:`DPMSolverPPMultistep` (default: diffusers' rule, N < 15).
    """

    name: ClassVar[str] = "dpmpp_2m"

    def __init__(self, *, solver_type: str = "midpoint", lower_order_final: bool | None = None) -> None:
        super().__init__(order=2, solver_type=solver_type, lower_order_final=lower_order_final)


@register_sampler
class DPMSolverPP3M(DPMSolverPPMultistep):
    """DPM-Solver++(3M) with the Taylor-correct second-derivative term (global order 3).

    Deviation, on purpose: diffusers' ``multistep_dpm_solver_third_order_update`` (and the original DPM-Solver code)
    weights D2 = (D1_0 − D1_1)/(r0 + r1) ≈ h²·x̂1''/2 by d_t·(½ − φ2/h²) = d_t·φ3/h², so it applies φ3·x̂1''/2 where the
    Taylor expansion needs φ3·x̂1'' — half the exact term — and is only second order (``reference/samplers.md`` §2). Here D'' is the second derivative of the quadratic
    through the last three data predictions and the step integrates that quadratic exactly (as DBIM order 3).

    Args:
        solver_type: Formula of the order-2 warm-up / lowered steps (``"midpoint"`` or ``"heun"``).
        lower_order_final: See :class:`DPMSolverPPMultistep`.
    """

    name: ClassVar[str] = "dpmpp_3m"

    def __init__(self, *, solver_type: str = "midpoint", lower_order_final: bool | None = None) -> None:
        super().__init__(order=3, solver_type=solver_type, lower_order_final=lower_order_final)


@register_sampler
class DPMSolverPP2S(_DataFormSampler):
    """DPM-Solver++(2S) (Lu et al. 2022, Alg. 1): singlestep second order, two evaluations per step.

    From s to t (h = λ_t − λ_s): a first-order step to the intermediate time u with λ_u = λ_s + r·h, then
    ``x_t = (n_t/n_s)x_s + (k_t − k_s n_t/n_s)x_src + d_t·φ1(h)·[(1 − 1/(2r))·x̂1_s + 1/(2r)·x̂1_u]``; with the
    default r = ½ the bracket is x̂1_u alone (k-diffusion ``sample_dpmpp_2s_ancestral`` with η = 0). The time u is
    found by bisection on the monotone λ(t). A step with an infinite end (λ = −∞ at a pure-noise start, λ = +∞ at
    the data end) is first order and costs one evaluation, like k-diffusion's Euler step onto σ = 0, so such grids
    use fewer than 2N evaluations.

    Args:
        r: Position of the intermediate point in λ, in (0, 1).
    """

    name: ClassVar[str] = "dpmpp_2s"

    def __init__(self, *, r: float = 0.5) -> None:
        if not 0.0 < float(r) < 1.0:
            raise ValueError(f"r must lie strictly between 0 and 1, got {r!r}")
        self.r = float(r)

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
        tab = self._table(field, grid)
        x_src = self._known_source(field, cond)
        interp = field.interpolant
        n = grid.numel() - 1
        lam = [float(v) for v in tab.lam]
        finite = [math.isfinite(lam[i + 1] - lam[i]) for i in range(n)]
        idx = [i for i in range(n) if finite[i]]
        mid: dict[int, SemilinearGrid] = {}
        if idx:
            targets = torch.tensor([lam[i] + self.r * (lam[i + 1] - lam[i]) for i in idx], dtype=torch.float64)
            t_u = interp.time_at_lam(targets, t_lo=tab.t[idx], t_hi=tab.t[[i + 1 for i in idx]])
            tab_u = semilinear_grid(interp, t_u)
            for j, i in enumerate(idx):
                if not 0.0 < (float(tab_u.lam[j]) - lam[i]) / (lam[i + 1] - lam[i]) < 1.0:  # checked before any call
                    raise ValueError(
                        f"sampler {self.name!r} finds no time in [{float(grid[i]):.6g}, {float(grid[i + 1]):.6g}] "
                        "whose λ lies strictly inside the step: λ(t) is flat or not monotone there (inexact "
                        "schedule coefficients, e.g. a zero that rounds to 1e-17); start the grid where λ is "
                        "resolved, e.g. t >= 1e-3"
                    )
                mid[i] = SemilinearGrid(t=tab_u.t[j:j + 1], noise=tab_u.noise[j:j + 1], data=tab_u.data[j:j + 1],
                                        known=None if tab_u.known is None else tab_u.known[j:j + 1],
                                        lam=tab_u.lam[j:j + 1])
        for i in range(n):
            m0 = field.evaluate(x, grid[i], cond)("x1")
            h = lam[i + 1] - lam[i]
            ratio, known_coef = self._transfer(tab, i, float(tab.noise[i + 1]),
                                               None if tab.known is None else float(tab.known[i + 1]))
            phi1 = phi_functions(h, 1)[0]
            d_next = float(tab.data[i + 1])
            if i not in mid:
                x = combine(x, ratio, known_coef, x_src, [d_next * phi1], [m0])
            else:
                u = mid[i]
                h_u = float(u.lam[0]) - lam[i]
                ratio_u, known_u = self._transfer(tab, i, float(u.noise[0]),
                                                  None if u.known is None else float(u.known[0]))
                x_u = combine(x, ratio_u, known_u, x_src, [float(u.data[0]) * phi_functions(h_u, 1)[0]], [m0])
                m_u = field.evaluate(x_u, u.t[0].to(grid.device), cond)("x1")
                r = h_u / h  # the realised r (equal to self.r up to the bisection tolerance)
                w_u = 1.0 / (2.0 * r)
                x = combine(x, ratio, known_coef, x_src, [d_next * phi1 * (1.0 - w_u), d_next * phi1 * w_u],
                                  [m0, m_u])
            x = self._report(i, grid, x, callback, trajectory, x1_hat=m0)
        return x, {}
