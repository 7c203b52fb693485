"""DEIS: diffusion exponential integrator samplers (Zhang & Chen, ICLR'23, arXiv:2204.13902) and iPNDM.

All variants integrate the probability-flow ODE of a Gaussian-source path in ε-form. In genlab names (x_t = α ε + β x1,
ρ = α/β, the noise-to-signal ratio of DEIS; ``reference/samplers.md`` §0, §3):

    x_t = (β_t/β_s)·x_s + β_t ∫_{ρ_s}^{ρ_t} ε̂(x_ρ, ρ) dρ,

and approximate the integral from past noise predictions ε̂ (one evaluation per step, except ρRK):

* ``deis_tab`` — tAB-DEIS(r) (``th_deis`` ``get_sampler_t_ab``): Lagrange polynomial of degree
  r in t through ε̂_{i}, …, ε̂_{i−r}, ``C_ij = β_{i+1} ∫_{t_i}^{t_{i+1}} ρ'(τ) ℓ_ij(τ) dτ``.
* ``deis_rhoab`` — ρAB-DEIS(r) (``get_sampler_rho_ab``): Lagrange polynomial in ρ, integrated exactly.
* ``deis_rhork`` — ρRK-DEIS (``get_sampler_rho_rk``): a Runge–Kutta method on ``dv/dρ = ε̂`` with v = x/β.
* ``ipndm`` — improved PNDM (Zhang & Chen, ``get_sampler_ipndm``): Adams–Bashforth weights of fixed steps,
  applied to the ρ-increments.
* ``deis_logrho`` — diffusers' ``DEISMultistepScheduler`` (``solver_type="logrho"``): Lagrange basis in log ρ.

**Order naming.** DEIS's ``order`` r is the polynomial *degree* (r + 1 nodes, global order r + 1): tAB3 is fourth
order. iPNDM's and diffusers' ``order`` count nodes (order k is global order k).

ε-form solvers need the data coefficient β > 0 at every grid time (ρ finite): they raise on grids that start at a
pure-noise time such as t = 0 of rectified flow; start at t ≥ 1e-3 there (``grids.log_snr`` does it). Grids may end at
the data end (ρ = 0): the multistep variants never evaluate there.

tAB and ρAB coincide when ρ is affine in t. The DEIS/k-diffusion VE path has σ = t, hence that identity ("tAB ≡ ρAB on
VE"); genlab's :func:`~genlab.interpolants.VEDiffusion` has a geometric σ(t), on which the two differ.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.multistep import MultistepTable, TableSampler, combine
from genlab.samplers.ode import ButcherTableau
from genlab.samplers.registry import register_sampler
from genlab.samplers.semilinear import (
    SemilinearGrid,
    check_lower_order_final,
    multistep_orders,
    semilinear_grid,
)

__all__ = [
    "DEISTAB",
    "IPNDM",
    "IPNDM_COEFFICIENTS",
    "RHO_RK_TABLEAUX",
    "DEISLogRho",
    "DEISRhoAB",
    "DEISRhoRK",
    "lagrange_integrals",
]

#: iPNDM weights of ε̂_i, ε̂_{i−1}, … for 1..4 nodes (Adams–Bashforth with unit steps).
IPNDM_COEFFICIENTS: tuple[tuple[float, ...], ...] = (
    (1.0,),
    (3 / 2, -1 / 2),
    (23 / 12, -16 / 12, 5 / 12),
    (55 / 24, -59 / 24, 37 / 24, -9 / 24),
)

#: Explicit RK tableaux of ρRK-DEIS (``th_deis/rk.py`` names; standard textbook coefficients).
RHO_RK_TABLEAUX: dict[str, ButcherTableau] = {
    "1euler": ButcherTableau([[0.0]], [1.0], [0.0]),
    "2heun": ButcherTableau([[0.0, 0.0], [1.0, 0.0]], [0.5, 0.5], [0.0, 1.0]),
    "2midpoint": ButcherTableau([[0.0, 0.0], [0.5, 0.0]], [0.0, 1.0], [0.0, 0.5]),
    "3kutta": ButcherTableau([[0, 0, 0], [0.5, 0, 0], [-1.0, 2.0, 0]], [1 / 6, 4 / 6, 1 / 6], [0.0, 0.5, 1.0]),
    "3ral": ButcherTableau([[0, 0, 0], [0.5, 0, 0], [0, 0.75, 0]], [2 / 9, 1 / 3, 4 / 9], [0.0, 0.5, 0.75]),
    "3heun": ButcherTableau([[0, 0, 0], [1 / 3, 0, 0], [0, 2 / 3, 0]], [0.25, 0.0, 0.75], [0.0, 1 / 3, 2 / 3]),
    "3ssprk": ButcherTableau([[0, 0, 0], [1.0, 0, 0], [0.25, 0.25, 0]], [1 / 6, 1 / 6, 2 / 3], [0.0, 1.0, 0.5]),
    "4rk": ButcherTableau([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]],
                          [1 / 6, 1 / 3, 1 / 3, 1 / 6], [0.0, 0.5, 0.5, 1.0]),
}


# ---------------------------------------------------------------------------------------------- Lagrange helpers
def _lagrange_values(nodes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ℓ_j(u) for every node j, shape ``(len(nodes), len(u))``."""
    q = len(nodes)
    out = np.ones((q, len(u)))
    for j in range(q):
        for k in range(q):
            if k != j:
                out[j] *= (u - nodes[k]) / (nodes[j] - nodes[k])
    return out


def _lagrange_derivatives(nodes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ℓ_j'(u) = Σ_{m≠j} 1/(n_j − n_m) Π_{k≠j,m} (u − n_k)/(n_j − n_k), shape ``(len(nodes), len(u))``."""
    q = len(nodes)
    out = np.zeros((q, len(u)))
    for j in range(q):
        for m in range(q):
            if m == j:
                continue
            term = np.full(len(u), 1.0 / (nodes[j] - nodes[m]))
            for k in range(q):
                if k not in (j, m):
                    term = term * (u - nodes[k]) / (nodes[j] - nodes[k])
            out[j] += term
    return out


def lagrange_integrals(nodes: np.ndarray | list[float]) -> np.ndarray:
    """``∫_0^1 ℓ_j(u) du`` for the Lagrange basis on ``nodes`` (exact: Gauss–Legendre with enough points).

    Args:
        nodes: Interpolation nodes (distinct), in units where the step is [0, 1].

    Returns:
        One weight per node.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    x, w = np.polynomial.legendre.leggauss(max(2, len(nodes)))
    u, w = 0.5 * (x + 1.0), 0.5 * w
    return _lagrange_values(nodes, u) @ w


def _gauss_legendre_01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights on [0, 1] after the map u = (1 − cos πw)/2, which removes √-type end singularities of ρ(t)."""
    x, w = np.polynomial.legendre.leggauss(n)
    s = 0.5 * (x + 1.0)
    u = 0.5 * (1.0 - np.cos(np.pi * s))
    return u, 0.5 * w * 0.5 * np.pi * np.sin(np.pi * s)


# ---------------------------------------------------------------------------------------------- shared base
class _EpsFormSampler(Sampler):
    """Shared checks and coefficient table of the ε-form (DEIS) samplers."""

    requires: ClassVar[frozenset[str]] = frozenset({"semilinear", "gaussian_source"})
    #: DEIS's log-ρ grid (Zhang & Chen ICLR'23 ``ts_phase="log"``), inside the ends where ρ is finite.
    default_grid: ClassVar[str] = "log_snr"

    def _table(self, field: CountingField, grid: Tensor) -> SemilinearGrid:
        return self._table_for(field.interpolant, grid)

    def _table_for(self, interpolant: Interpolant, grid: Tensor) -> SemilinearGrid:
        tab = semilinear_grid(interpolant, grid)
        tab.check_steps_from(self.name)
        bad = ~torch.isfinite(tab.rho)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"sampler {self.name!r} works in ε-form and needs ρ = noise/data finite at every grid time, but the "
                f"data coefficient is {float(tab.data[i]):.3g} at t={float(tab.t[i]):.6g} (grid[{i}]); start the grid "
                "where the path carries some signal, e.g. t >= 1e-3 on rectified flow (grids.log_snr picks that end), "
                "or use a data-form sampler (dpmpp_2m) which is defined there"
            )
        return tab


class _EpsMultistepSampler(_EpsFormSampler, TableSampler):
    """ε-form linear multistep samplers: subclasses supply the weights, :func:`run_multistep` runs them."""

    @abstractmethod
    def _step_coefficients(self, interp: Any, tab: SemilinearGrid) -> list[list[float]]:
        """Row i: the weights of ε̂_i, ε̂_{i−1}, … in step i (``tab`` as returned by :meth:`_table`)."""

    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        """``x_{i+1} = (β_{i+1}/β_i)x_i + Σ_j coefs[i][j]·ε̂_{i−j}`` as a noise-form table (one evaluation per step)."""
        tab = self._table_for(interpolant, grid)
        coefs = self._step_coefficients(interpolant, tab)
        ratio = tuple(float(tab.data[i + 1] / tab.data[i]) for i in range(len(coefs)))
        return MultistepTable(times=tab.t, form="noise", ratio=ratio, weights=tuple(map(tuple, coefs)))


def _check_degree(order: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or not lo <= order <= hi:
        raise ValueError(f"order must be an integer {what} in [{lo}, {hi}], got {order!r}")
    return order


# ---------------------------------------------------------------------------------------------- tAB / ρAB / iPNDM
@register_sampler
class DEISTAB(_EpsMultistepSampler):
    """tAB-DEIS(r) (Zhang & Chen ICLR'23; ``th_deis/multistep.py`` ``get_sampler_t_ab``).

    ``x_{i+1} = (β_{i+1}/β_i)x_i + Σ_{j=0}^{q} C_ij ε̂_{i−j}``, q = min(i, r) (warm-up with lower degree), with
    ``C_ij = β_{i+1} ∫_{t_i}^{t_{i+1}} ρ'(τ) ℓ_ij(τ) dτ`` and ℓ_ij the Lagrange basis in t on t_i, …, t_{i−q}.

    Deviation from the reference: the coefficients are computed once per grid in float64 with Gauss–Legendre
    quadrature after integrating by parts, ``∫ρ'ℓ = [ρℓ] − ∫ρℓ'``, and the map u = (1 − cos πw)/2, so only ρ itself
    is evaluated and its √-type endpoint behaviour (VP at t = 1) stays harmless; the reference uses a 10 000-point
    Riemann sum in float32, so the two differ by about 1e-4 relative (no bit parity). With r = 0 this is DDIM.

    Args:
        order: Polynomial degree r ∈ [0, 3] (DEIS naming; global order r + 1). Default 3 (the README's ``ab_order``).
        quadrature_nodes: Gauss–Legendre nodes per step (32–64 reach float64 precision on smooth schedules).
    """

    name: ClassVar[str] = "deis_tab"

    def __init__(self, *, order: int = 3, quadrature_nodes: int = 64) -> None:
        self.order = _check_degree(order, 0, 3, "(polynomial degree r)")
        if not isinstance(quadrature_nodes, int) or quadrature_nodes < 4:
            raise ValueError(f"quadrature_nodes must be an integer >= 4, got {quadrature_nodes!r}")
        self.quadrature_nodes = quadrature_nodes

    def coefficients(self, field_or_interpolant: Any, grid: Tensor) -> list[list[float]]:
        """All ``C_ij`` of a grid (row i: weights of ε̂_i, ε̂_{i−1}, …).

        Args:
            field_or_interpolant: A :class:`~genlab.models.Field` (or counting wrapper) or an interpolant.
            grid: ``(N+1,)`` times.

        Returns:
            One list of weights per step.
        """
        interp = getattr(field_or_interpolant, "interpolant", field_or_interpolant)
        tab = semilinear_grid(interp, grid)
        return self._step_coefficients(interp, tab)

    def _step_coefficients(self, interp: Any, tab: SemilinearGrid) -> list[list[float]]:
        t = tab.t.numpy()
        rho = tab.rho.numpy()
        beta = tab.data.numpy()
        n = len(t) - 1
        u, w = _gauss_legendre_01(self.quadrature_nodes)
        taus = t[:-1, None] + u[None, :] * (t[1:] - t[:-1])[:, None]  # (N, nodes)
        tau_t = torch.from_numpy(taus.reshape(-1).copy())
        rho_tau = semilinear_grid(interp, tau_t).rho.numpy().reshape(n, -1)
        out = []
        for i in range(n):
            q = min(i, self.order)
            h = t[i + 1] - t[i]
            nodes = np.array([(t[i - k] - t[i]) / h for k in range(q + 1)])
            l_end = _lagrange_values(nodes, np.array([1.0]))[:, 0]
            dl = _lagrange_derivatives(nodes, u)  # (q+1, nodes)
            integral = dl @ (w * rho_tau[i])
            start = np.zeros(q + 1)
            start[0] = rho[i]
            out.append([float(v) for v in beta[i + 1] * (rho[i + 1] * l_end - start - integral)])
        return out


@register_sampler
class DEISRhoAB(_EpsMultistepSampler):
    """ρAB-DEIS(r) (Zhang & Chen ICLR'23; ``th_deis`` ``get_sampler_rho_ab``): Adams–Bashforth in ρ.

    ``x_{i+1} = (β_{i+1}/β_i)x_i + β_{i+1} Σ_j [∫_{ρ_i}^{ρ_{i+1}} ℓ_ij(ρ) dρ]·ε̂_{i−j}`` with the Lagrange basis on
    ρ_i, …, ρ_{i−q}, q = min(i, r), integrated exactly. When ρ is affine in t it equals tAB-DEIS(r).

    Args:
        order: Polynomial degree r ∈ [0, 3] (global order r + 1).
    """

    name: ClassVar[str] = "deis_rhoab"

    def __init__(self, *, order: int = 3) -> None:
        self.order = _check_degree(order, 0, 3, "(polynomial degree r)")

    def _step_coefficients(self, interp: Any, tab: SemilinearGrid) -> list[list[float]]:
        rho = tab.rho.numpy()
        beta = tab.data.numpy()
        out = []
        for i in range(len(rho) - 1):
            q = min(i, self.order)
            d = rho[i + 1] - rho[i]
            nodes = [(rho[i - k] - rho[i]) / d for k in range(q + 1)]
            out.append([float(v) for v in beta[i + 1] * d * lagrange_integrals(nodes)])
        return out


@register_sampler
class IPNDM(_EpsMultistepSampler):
    """iPNDM (introduced with DEIS, Zhang & Chen ICLR'23; ``th_deis`` ``get_sampler_ipndm``): fixed Adams–Bashforth weights.

    ``x_{i+1} = (β_{i+1}/β_i)x_i + β_{i+1}(ρ_{i+1} − ρ_i)·Σ_j b_j ε̂_{i−j}``, b = [1], [3/2, −1/2],
    [23, −16, 5]/12, [55, −59, 37, −9]/24, using the i-th row at step i until ``order`` nodes are available. The
    weights assume equal ρ-steps; the reference pairs it with a uniform t grid.

    Args:
        order: Number of nodes k ∈ [1, 4] (AB-k; default 4).
    """

    name: ClassVar[str] = "ipndm"

    def __init__(self, *, order: int = 4) -> None:
        self.order = _check_degree(order, 1, 4, "(number of nodes)")

    def _step_coefficients(self, interp: Any, tab: SemilinearGrid) -> list[list[float]]:
        rho, beta = tab.rho, tab.data
        coefs = []
        for i in range(tab.t.numel() - 1):
            b = IPNDM_COEFFICIENTS[min(i, self.order - 1)]
            scale = float(beta[i + 1] * (rho[i + 1] - rho[i]))
            coefs.append([scale * v for v in b])
        return coefs


# ---------------------------------------------------------------------------------------------- log-ρ (diffusers)
def _exp_moments(y_end: float, degree: int) -> list[float]:
    """``K_m = ∫_0^{Y} y^m e^y dy`` for m = 0..degree (Y may be −∞: then K_m = (−1)^{m+1} m!)."""
    if y_end == -math.inf:
        return [(-1.0) ** (m + 1) * math.factorial(m) for m in range(degree + 1)]
    if abs(y_end) <= 1.0:  # series Σ_n Y^{n+m+1}/(n!(n+m+1)), no cancellation
        return [sum(y_end ** (n + m + 1) / (math.factorial(n) * (n + m + 1)) for n in range(40))
                for m in range(degree + 1)]
    e = math.exp(y_end)
    out = [e - 1.0]
    for m in range(1, degree + 1):
        out.append(y_end**m * e - m * out[-1])
    return out


@register_sampler
class DEISLogRho(_EpsMultistepSampler):
    """diffusers' ``DEISMultistepScheduler`` (``algorithm_type="deis"``, ``solver_type="logrho"``) as a genlab sampler.

    ``x_{i+1} = β_{i+1}[x_i/β_i + Σ_j c_j ε̂_{i−j}]`` with ``c_j = ∫_{ρ_i}^{ρ_{i+1}} ℓ_j(log ρ) dρ`` and ℓ_j the
    Lagrange basis in log ρ on ρ_i, …, ρ_{i−k+1} (``reference/samplers.md`` §3.5). The integrals are evaluated in
    closed form after the substitution ρ = ρ_i e^{y}: ``∫ y^m ρ_i e^{y} dy``, which equals diffusers' expressions
    (order 2: F, order 3: G) up to rounding and stays finite when ρ_{i+1} = 0. Order 1 is DDIM.

    Order schedule as in diffusers: order 1 at the first step, ≤ 2 at the second; with ``lower_order_final`` the
    last step is order 1 and the one before ≤ 2.

    Args:
        order: Number of nodes k ∈ {1, 2, 3} (diffusers' ``solver_order``, global order k; default 2 as diffusers).
        lower_order_final: ``None`` (default) lowers the final steps only on grids of fewer than 15 steps, exactly
            diffusers' ``lower_order_final=True``; ``True``/``False`` force it on/off.
    """

    name: ClassVar[str] = "deis_logrho"

    def __init__(self, *, order: int = 2, lower_order_final: bool | None = None) -> None:
        self.order = _check_degree(order, 1, 3, "(number of nodes, diffusers' solver_order)")
        self.lower_order_final = check_lower_order_final(lower_order_final)

    def _step_coefficients(self, interp: Any, tab: SemilinearGrid) -> list[list[float]]:
        rho = [float(v) for v in tab.rho]
        beta = tab.data
        out = []
        for i, k in enumerate(multistep_orders(self.order, len(rho) - 1, self.lower_order_final)):
            y_nodes = [math.log(rho[i - j] / rho[i]) for j in range(k)]  # log ρ shifted by log ρ_i
            y_end = math.log(rho[i + 1] / rho[i]) if rho[i + 1] > 0 else -math.inf
            moments = _exp_moments(y_end, k - 1)
            coefs = []
            for j in range(k):
                others = [y_nodes[m] for m in range(k) if m != j]
                denom = math.prod(y_nodes[j] - o for o in others)
                poly = np.poly(others) / denom if others else np.array([1.0])  # highest power first
                coefs.append(rho[i] * sum(a * moments[len(poly) - 1 - p] for p, a in enumerate(poly)))
            out.append([float(beta[i + 1]) * c for c in coefs])
        return out


# ---------------------------------------------------------------------------------------------- ρRK
@register_sampler
class DEISRhoRK(_EpsFormSampler):
    """ρRK-DEIS (Zhang & Chen ICLR'23; ``th_deis`` ``get_sampler_rho_rk``): Runge–Kutta on ``dv/dρ = ε̂(β v, t(ρ))``.

    With v = x/β, each step applies the tableau on [ρ_i, ρ_{i+1}]; stage times t(ρ_i + c_k Δρ) come from bisection
    on the monotone ρ(t) (computed once per grid). Stages with c = 1 evaluate ε̂ at the step end, so the grid must
    not end at the data end (ε̂ is undefined where the noise coefficient is 0).

    Args:
        method: Tableau name in :data:`RHO_RK_TABLEAUX` (``1euler``, ``2heun``, ``2midpoint``, ``3kutta``, ``3ral``,
            ``3heun``, ``3ssprk``, ``4rk``) or a :class:`~genlab.samplers.ode.ButcherTableau`.
    """

    name: ClassVar[str] = "deis_rhork"

    def __init__(self, *, method: str | ButcherTableau = "3kutta") -> None:
        if isinstance(method, str):
            if method not in RHO_RK_TABLEAUX:
                raise ValueError(f"unknown rhoRK method {method!r}; choose one of {sorted(RHO_RK_TABLEAUX)}")
            self._tableau = RHO_RK_TABLEAUX[method]
        elif isinstance(method, ButcherTableau):
            self._tableau = method
        else:
            raise TypeError(f"method must be a tableau name or a ButcherTableau, got {type(method).__name__}")
        self.method = method

    @property
    def tableau(self) -> ButcherTableau:
        """The Runge–Kutta tableau."""
        return self._tableau

    def expected_nfe(self, steps: int) -> int | None:
        return self.tableau.stages * steps

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
        tb = self.tableau
        n = grid.numel() - 1
        rho = [float(v) for v in tab.rho]
        if any(c == 1.0 for c in tb.c) and not float(tab.noise[n]) > 0:
            raise ValueError(f"sampler {self.name!r} with a stage at c = 1 evaluates ε̂ at the last grid time "
                             f"t={float(tab.t[n]):.6g}, where the noise coefficient is 0; end the grid just before "
                             "the data end (e.g. 1 - 1e-3)")
        # stage times: exact grid times for c ∈ {0, 1}, bisection on λ = −log ρ otherwise
        inner = [(i, k) for i in range(n) for k, c in enumerate(tb.c) if c not in (0.0, 1.0)]
        stage_t: dict[tuple[int, int], Tensor] = {}
        stage_beta: dict[tuple[int, int], float] = {}
        if inner:
            lam_targets = torch.tensor([-math.log(rho[i] + tb.c[k] * (rho[i + 1] - rho[i])) for i, k in inner],
                                       dtype=torch.float64)
            ts = field.interpolant.time_at_lam(lam_targets, t_lo=tab.t[[i for i, _ in inner]],
                                               t_hi=tab.t[[i + 1 for i, _ in inner]])
            betas = semilinear_grid(field.interpolant, ts).data
            for j, key in enumerate(inner):
                stage_t[key] = ts[j].to(grid.device)
                stage_beta[key] = float(betas[j])
        for i in range(n):
            d_rho = rho[i + 1] - rho[i]
            b_i = float(tab.data[i])
            eps: list[Tensor] = []
            for k, c in enumerate(tb.c):
                if c == 0.0:
                    t_k, b_k = grid[i], b_i
                elif c == 1.0:
                    t_k, b_k = grid[i + 1], float(tab.data[i + 1])
                else:
                    t_k, b_k = stage_t[(i, k)], stage_beta[(i, k)]
                x_k = combine(x, b_k / b_i, 0.0, None, [b_k * d_rho * a for a in tb.a[k][:k]], eps)
                eps.append(field.evaluate(x_k, t_k, cond)("noise"))
            b_next = float(tab.data[i + 1])
            x = combine(x, b_next / b_i, 0.0, None, [b_next * d_rho * bw for bw in tb.b], eps)
            x = self._report(i, grid, x, callback, trajectory)
        return x, {}
