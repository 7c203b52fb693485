"""UniPC (Zhao, Bai, Rao, Zhou & Lu, NeurIPS'23, arXiv:2302.04867): unified predictor–corrector, data prediction.

One step from λ_k to λ_{k+1} (h = λ_{k+1} − λ_k) of the **UniP-p** predictor in data form (the paper's Alg. 2 with
x̂1 the data prediction; genlab's noise coefficient n, data coefficient d, λ = log(d/n), known source on bridges)

    x_{k+1} = (n_{k+1}/n_k)·x_k^c + (k_{k+1} − k_k n_{k+1}/n_k)·x_src
              + d_{k+1}·[φ1(h)·m_k − B(h)·Σ_{i=1}^{p−1} a_i·(m_{k−i} − m_k)/r_i],     r_i = (λ_{k−i} − λ_k)/h,

and the **UniC-p** corrector, once m_{k+1} = x̂1(x_{k+1}) is known (no extra evaluation: it is the next step's
prediction), recomputes the same step with one more node (r_p = 1, D_p = m_{k+1} − m_k) and weights c:

    x_{k+1}^c = (n_{k+1}/n_k)·x_k^c + … + d_{k+1}·[φ1·m_k − B(h)·(Σ_{i<p} c_i·D_i + c_p·D_p)].

The weights solve the order conditions Σ_i a_i r_i^{j−1} = j!·φ_{j+1}(h)/(h^j·B(h)) (j = 1 … p−1 for UniP,
j = 1 … p for UniC; the paper's eq. 8/Thm 3.1 with the Vandermonde system R_p(h)), with the paper's simplified
choices a = [½] for UniP-2 and c = [½] for UniC-1. B(h) = h ("bh1") or e^h − 1 ("bh2"), written in the data-form
sign convention (hh = −h) exactly as diffusers' ``UniPCMultistepScheduler`` does. The effective order of UniPC-p is
p + 1.

**One table.** Because the predictor and the corrector of a step share the state ratio and the source term, the
corrected state is the predicted one plus a combination of data predictions; folding that correction into the next
step makes UniPC a linear multistep table over (state at the evaluation, history of x̂1) — it runs on the one
engine, :func:`genlab.samplers.multistep.run_multistep`, on every path with semilinear structure: Gaussian-source
paths (VP, VE, rectified flow, trig) and bridges with a known source (DDBM), where the known-source term of the
exact solution is kept. The last step is not corrected (there is no evaluation at its end), as in diffusers.

Orders follow diffusers: warm-up (step k uses at most k + 1 nodes) and, with ``lower_order_final`` (on by default, as
in diffusers), at most N − k nodes on step k. As in genlab's DPM-Solver++, a step onto or from an end where λ is
infinite is first order (the step onto the data end returns the data prediction; the step from pure noise of a
rectified flow is exact) and is not corrected, and a step whose λ-step is more than ``max_step_ratio`` times the
previous one drops to first order (the extrapolation would be far outside its nodes; off on diffusers' grids).

Parity: with the scheduler's σ's in float64 this equals diffusers' ``UniPCMultistepScheduler`` (``predict_x0=True``,
``bh1``/``bh2``, orders 1–3, ``lower_order_final``) to ~1e-13; with its stock float32 σ's to its float32 rounding
(tests/samplers/test_unipc.py). Only the data-prediction form (``predict_x0=True``) and the B(h) variants are
implemented (not UniPC_v, not ``solver_p``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.samplers.multistep import MultistepTable, TableSampler, phi_functions
from genlab.samplers.registry import register_sampler
from genlab.samplers.semilinear import SemilinearGrid, check_lower_order_final, semilinear_grid

__all__ = ["B_H_VARIANTS", "UniPC", "unipc_orders", "unipc_table", "unipc_weights"]

#: B(h) variants of the paper (§3.2): "bh1" B(h) = h, "bh2" B(h) = e^h − 1 (data-form sign, hh = −h).
B_H_VARIANTS = ("bh1", "bh2")


def _b_of_h(variant: str, h: float) -> float:
    hh = -h
    return hh if variant == "bh1" else math.expm1(hh)


def unipc_weights(h: float, rks: Sequence[float], variant: str, *, corrector: bool) -> list[float]:
    """The UniP (``corrector=False``) or UniC weights for the nodes ``rks`` (r_i = (λ_{k−i} − λ_k)/h).

    UniP-p gets p − 1 nodes and returns p − 1 weights a; UniC-p gets the same p − 1 nodes (r = 1 for the new
    prediction is appended here) and returns p weights c. The right-hand side is b_j = j!·h_φ_{j+1}/B(h) with
    h_φ_{j+1} = −φ_{j+1}(h)/h^j (genlab's cancellation-free φ-functions; diffusers' recurrence gives the same values).

    Args:
        h: λ_{k+1} − λ_k (finite, non-zero).
        rks: Normalised nodes of the past predictions, newest first.
        variant: ``"bh1"`` or ``"bh2"``.
        corrector: UniC (``True``) or UniP.

    Returns:
        The weights.
    """
    p = len(rks) + 1
    phis = phi_functions(h, p + 1)
    bh = _b_of_h(variant, h)
    b = [-math.factorial(j) * phis[j] / h**j / bh for j in range(1, p + 1)]  # b_1 … b_p
    nodes = [*rks, 1.0]
    if corrector:
        if p == 1:
            return [0.5]
        mat = torch.tensor([[r**i for r in nodes] for i in range(p)], dtype=torch.float64)
        return [float(v) for v in torch.linalg.solve(mat, torch.tensor(b, dtype=torch.float64))]
    if p == 1:
        return []
    if p == 2:
        return [0.5]
    mat = torch.tensor([[r**i for r in rks] for i in range(p - 1)], dtype=torch.float64)
    return [float(v) for v in torch.linalg.solve(mat, torch.tensor(b[:-1], dtype=torch.float64))]


def unipc_orders(tab: SemilinearGrid, order: int, lower_order_final: bool, *,
                 max_step_ratio: float | None = None) -> list[int]:
    """Order p of the UniP step at each grid step (warm-up, ``lower_order_final``, infinite λ, step ratio).

    Args:
        tab: Semilinear coefficients of the grid.
        order: Maximal order.
        lower_order_final: diffusers' rule: at most N − k nodes on step k.
        max_step_ratio: Largest |h/h₁| at which a step keeps order ≥ 2 (``None``: no limit).

    Returns:
        One order per step.
    """
    lam = [float(v) for v in tab.lam]
    n = len(lam) - 1
    orders = []
    for k in range(n):
        p = min(order, k + 1)
        if lower_order_final:
            p = min(p, n - k)
        if not math.isfinite(lam[k + 1] - lam[k]):
            p = 1
        for i in range(1, p):
            if not math.isfinite(lam[k - i]):
                p = i
                break
        if max_step_ratio is not None and p > 1:
            h, h1 = lam[k + 1] - lam[k], lam[k] - lam[k - 1]
            if abs(h) > max_step_ratio * abs(h1):
                p = 1
        orders.append(p)
    return orders


def unipc_table(interpolant: Interpolant, grid: Tensor, *, order: int = 2, variant: str = "bh2",
                lower_order_final: bool = True, corrector: bool = True, disable_corrector: Sequence[int] = (),
                max_step_ratio: float | None = 2.0, name: str = "unipc") -> MultistepTable:
    """The coefficient table of UniPC (UniP-p + UniC-p folded into the next step) on ``grid``.

    Args:
        interpolant: A path with semilinear structure.
        grid: ``(N+1,)`` times.
        order: Maximal predictor order p (1, 2 or 3).
        variant: ``"bh1"`` or ``"bh2"``.
        lower_order_final: See :class:`UniPC`.
        corrector: Apply UniC after every step but the last.
        disable_corrector: Steps whose result is not corrected (diffusers' ``disable_corrector``).
        max_step_ratio: See :func:`unipc_orders`.
        name: Sampler name for error messages.

    Returns:
        A data-form :class:`MultistepTable` (``known`` set on bridges).
    """
    tab = semilinear_grid(interpolant, grid)
    tab.check_steps_from(name)
    lam = [float(v) for v in tab.lam]
    n = len(lam) - 1
    orders = unipc_orders(tab, order, lower_order_final, max_step_ratio=max_step_ratio)
    ratios: list[float] = []
    knowns: list[float] | None = [] if tab.known is not None else None
    rows: list[tuple[float, ...]] = []
    pending: list[float] = []  # the correction of the state reached by the previous step (newest prediction first)
    for k in range(n):
        p = orders[k]
        h = lam[k + 1] - lam[k]
        d_next = float(tab.data[k + 1])
        ratio = float(tab.noise[k + 1]) / float(tab.noise[k])
        row = [0.0] * max(p, len(pending))
        # the correction of x_k made at this evaluation, carried through the state ratio
        for j, c in enumerate(pending):
            row[j] += ratio * c
        if not math.isfinite(h):  # first-order exponential step onto / from an end where λ is infinite
            row[0] += d_next * phi_functions(h, 1)[0]
            pending = []
        else:
            phi1 = phi_functions(h, 1)[0]
            bh = _b_of_h(variant, h)
            rks = [(lam[k - i] - lam[k]) / h for i in range(1, p)]
            a = unipc_weights(h, rks, variant, corrector=False)
            row[0] += d_next * phi1
            for i, (ai, ri) in enumerate(zip(a, rks), start=1):  # −d·B(h)·a_i·(m_{k−i} − m_k)/r_i
                row[i] += -d_next * bh * ai / ri
                row[0] += d_next * bh * ai / ri
            pending = []
            if corrector and k < n - 1 and k not in set(disable_corrector):
                c = unipc_weights(h, rks, variant, corrector=True)
                # x^c − x^pred = −d·B(h)·[Σ_i (c_i − a_i)·D_i + c_p·(m_{k+1} − m_k)], newest (m_{k+1}) first
                pending = [0.0] * (p + 1)
                pending[0] += -d_next * bh * c[-1]
                pending[1] += d_next * bh * c[-1]
                for i, ri in enumerate(rks, start=1):
                    w = -d_next * bh * (c[i - 1] - a[i - 1]) / ri
                    pending[i + 1] += w
                    pending[1] -= w
        rows.append(tuple(row))
        ratios.append(ratio)
        if knowns is not None:
            knowns.append(float(tab.known[k + 1]) - float(tab.known[k]) * ratio)
    return MultistepTable(times=tab.t, form="data", ratio=tuple(ratios), weights=tuple(rows),
                          known=None if knowns is None else tuple(knowns))


@register_sampler
class UniPC(TableSampler):
    """UniPC-p (Zhao et al. NeurIPS'23): UniP-p predictor + UniC-p corrector in data form, one evaluation per step.

    Defaults are diffusers' ``UniPCMultistepScheduler`` defaults (``solver_order=2``, ``solver_type="bh2"``,
    ``lower_order_final=True``, corrector on every step but the last). On genlab's GMM oracles
    (``experiments/results/fast_samplers.md``: d = 2/16/64, VP and rectified flow, NFE 4–10, log-SNR grids) bh2 had
    the lower RMSE99 than bh1 in 29 of 30 settings and order 2 than order 3 in 25 of 30; order 3 and bh1 are one
    keyword away (diffusers suggests ``order=3`` and, under 10 steps, bh1 for unconditional sampling). Recommended grid: uniform in log-SNR
    (:attr:`default_grid`), the paper's "logSNR" spacing for pixel-space models.

    Args:
        order: Predictor order p, 1 to 3 (effective order p + 1 with the corrector).
        variant: B(h): ``"bh2"`` (e^h − 1, default) or ``"bh1"`` (h).
        corrector: Apply UniC (``False``: UniP alone).
        disable_corrector: Step indices whose result is not corrected (diffusers' option of the same name).
        lower_order_final: At most N − k nodes on step k (diffusers' default ``True``).
        max_step_ratio: A step whose λ-step exceeds this multiple of the previous one is first order (``None``: off;
            never triggers on log-SNR grids or diffusers' timestep grids).
    """

    name: ClassVar[str] = "unipc"
    default_grid: ClassVar[str] = "log_snr"

    def __init__(self, *, order: int = 2, variant: str = "bh2", corrector: bool = True,
                 disable_corrector: Sequence[int] = (), lower_order_final: bool = True,
                 max_step_ratio: float | None = 2.0) -> None:
        if isinstance(order, bool) or order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
        if variant not in B_H_VARIANTS:
            raise ValueError(f"variant must be one of {B_H_VARIANTS} (B(h) = h or e^h - 1), got {variant!r}")
        if not isinstance(corrector, bool):
            raise TypeError(f"corrector must be True or False, got {corrector!r}")
        if check_lower_order_final(lower_order_final) is None:
            raise TypeError("lower_order_final must be True or False for UniPC (diffusers' rule applies always)")
        if isinstance(disable_corrector, (str, bytes)) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in disable_corrector):
            raise TypeError(f"disable_corrector must be a sequence of step indices, got {disable_corrector!r}")
        if max_step_ratio is not None and not float(max_step_ratio) >= 1.0:
            raise ValueError(f"max_step_ratio must be >= 1 or None, got {max_step_ratio!r}")
        self.order = int(order)
        self.variant = variant
        self.corrector = corrector
        self.disable_corrector = tuple(int(i) for i in disable_corrector)
        self.lower_order_final = lower_order_final
        self.max_step_ratio = None if max_step_ratio is None else float(max_step_ratio)

    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        """This sampler's :func:`unipc_table` on ``grid``."""
        return unipc_table(interpolant, grid, order=self.order, variant=self.variant,
                           lower_order_final=self.lower_order_final, corrector=self.corrector,
                           disable_corrector=self.disable_corrector, max_step_ratio=self.max_step_ratio,
                           name=self.name)

    def _aux(self, table: MultistepTable) -> dict[str, Any]:
        return {"table": table}
