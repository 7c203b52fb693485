"""One coefficient-table engine for every linear multistep exponential integrator, and its φ-function core.

Every multistep sampler of genlab on a path with semilinear structure (``x_t = known_t·x_src + data_t·x1 +
noise_t·z``, :meth:`~genlab.interpolants.Interpolant.semilinear`) takes steps of the same shape,

    x_{i+1} = r_i·x_i + k_i·x_src + Σ_j w_ij·p_{i−j},

with ``p`` the history of predictions of **one** kind: the data prediction x̂1 (``form="data"``: DPM-Solver++ kM,
Lu et al. 2022, Alg. 2; DBIM high order, Zheng et al. ICLR'25 §4.3) or the noise prediction ε̂ (``form="noise"``:
DEIS tAB/ρAB/log-ρ and iPNDM, Zhang & Chen ICLR'23, eq. 14). A method is therefore a *table* — the grid, the state
ratios r_i, the known-source coefficients k_i (bridges only) and the rows of weights w_ij — and :func:`run_multistep`
is the one loop that drives every table (``reference/samplers.md`` §0, §2, §3, §5). Table-producing functions live
with their methods (:func:`genlab.samplers.dpm_solver.dpmpp_table`, the DEIS/iPNDM samplers' ``build_table``,
:func:`genlab.samplers.dbim.dbim_ho_table`); :class:`MultistepTableSampler` runs an explicit table (e.g. a searched
preset loaded from JSON with :meth:`MultistepTable.from_dict`).

The data-form weights come from the φ-functions of the exponential integrator (DPM-Solver++, Lu et al. 2022, eq. 9;
DBIM, Zheng et al. ICLR'25, eq. 15),

    φ_k(h) = ∫_0^h e^{u−h} u^{k−1}/(k−1)! du = Σ_{n≥0} (−1)^n h^{n+k}/(n+k)!,

(φ_1 = 1 − e^{−h}, φ_2 = e^{−h} − 1 + h, φ_3 = h²/2 − h + 1 − e^{−h}), computed here once: by the series for |h| < 1
(the closed forms cancel catastrophically at small h: φ_3(1e-8) ≈ 1.7e-25 is the difference of two numbers of
size 1e-8) and by the exact recurrence φ_{k+1} = h^k/k! − φ_k from φ_1 = −expm1(−h) otherwise.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.interpolants.interpolant import Interpolant
from genlab.models.field import Field
from genlab.samplers.base import CountingField, Sampler, StepInfo
from genlab.samplers.semilinear import SemilinearGrid

__all__ = [
    "FORMS",
    "MultistepTable",
    "MultistepTableSampler",
    "TableSampler",
    "combine",
    "data_form_table",
    "data_form_weights",
    "phi_functions",
    "run_multistep",
]

#: Table form → the prediction kind its weights multiply.
FORMS: dict[str, str] = {"data": "x1", "noise": "noise"}

#: |h| below which the φ-functions use their power series (30 terms: truncation below 1e-30 relative there).
_SERIES_BELOW = 1.0
_SERIES_TERMS = 30


def phi_functions(h: float, order: int = 3) -> tuple[float, ...]:
    """``(φ_1(h), …, φ_order(h))`` with φ_k(h) = ∫_0^h e^{u−h} u^{k−1}/(k−1)! du, in float64 without cancellation.

    These weigh x̂1, dx̂1/dλ, d²x̂1/dλ², … in one data-form exponential-integrator step over h = λ_t − λ_s
    (Lu et al. 2022, eq. 9 with φ_k(h) = h^k·φ_k^{std}(−h)). For |h| < 1 the series Σ_n (−1)^n h^{n+k}/(n+k)!;
    otherwise φ_1 = −expm1(−h) and φ_{k+1} = h^k/k! − φ_k. For h = +∞ only φ_1 = 1 is finite (the step onto the
    data end), the others are returned as ``inf``.

    Args:
        h: Step in λ (any sign).
        order: How many φ's (≥ 1).

    Returns:
        ``order`` floats.

    Raises:
        ValueError: If ``order`` is not a positive integer.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    h = float(h)
    if not math.isfinite(h):
        phi1 = 1.0 if h == math.inf else -math.expm1(-h)
        return (phi1, *([math.inf] * (order - 1)))
    if abs(h) < _SERIES_BELOW:
        out = []
        for k in range(1, order + 1):
            term = h**k / math.factorial(k)  # n = 0
            total = term
            for n in range(1, _SERIES_TERMS):
                term *= -h / (n + k)
                total += term
            out.append(total)
        return tuple(out)
    out = [-math.expm1(-h)]
    for k in range(1, order):
        out.append(h**k / math.factorial(k) - out[-1])
    return tuple(out)


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class MultistepTable:
    """The coefficients of a linear multistep exponential integrator on one grid.

    Step i (from ``times[i]`` to ``times[i+1]``) is ``x ← ratio[i]·x + known[i]·x_src + Σ_j weights[i][j]·p_{i−j}``
    with p the predictions of kind :data:`FORMS`\\[``form``] at ``times[i]``, ``times[i−1]``, …

    Attributes:
        times: ``(N+1,)`` float64 grid the table was made for (CPU).
        form: ``"data"`` (history of x̂1) or ``"noise"`` (history of ε̂; Gaussian-source paths only).
        ratio: N coefficients of the current state.
        weights: N rows; row i has one weight per past prediction used (newest first, at most i + 1).
        known: N coefficients of the known source x_src (bridges), or ``None`` for a Gaussian source.
    """

    times: Tensor
    form: str
    ratio: tuple[float, ...]
    weights: tuple[tuple[float, ...], ...]
    known: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.times, Tensor) or self.times.ndim != 1 or self.times.numel() < 2:
            raise ValueError("times must be a 1-D tensor of at least 2 grid times")
        object.__setattr__(self, "times", self.times.detach().to("cpu", torch.float64))
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {sorted(FORMS)}, got {self.form!r}")
        n = self.times.numel() - 1
        object.__setattr__(self, "ratio", tuple(float(v) for v in self.ratio))
        object.__setattr__(self, "weights", tuple(tuple(float(v) for v in row) for row in self.weights))
        if self.known is not None:
            object.__setattr__(self, "known", tuple(float(v) for v in self.known))
        for what, seq in (("ratio", self.ratio), ("weights", self.weights), ("known", self.known)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{what} needs one entry per step ({n} for {n + 1} times), got {len(seq)}")
        for i, row in enumerate(self.weights):
            if not 1 <= len(row) <= i + 1:
                raise ValueError(f"weights[{i}] must hold between 1 and {i + 1} weights (the predictions made so "
                                 f"far), got {len(row)}")
        if self.form == "noise" and self.known is not None:
            raise ValueError("a noise-form table integrates Gaussian-source paths only: pass known=None")

    @property
    def steps(self) -> int:
        """Number of steps N."""
        return len(self.ratio)

    @property
    def orders(self) -> tuple[int, ...]:
        """Number of past predictions used at each step."""
        return tuple(len(row) for row in self.weights)

    @property
    def depth(self) -> int:
        """Largest number of past predictions any step uses."""
        return max(self.orders)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (a searched-solver preset), inverse of :meth:`from_dict`."""
        return {"times": [float(v) for v in self.times], "form": self.form, "ratio": list(self.ratio),
                "weights": [list(row) for row in self.weights],
                "known": None if self.known is None else list(self.known)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultistepTable:
        """Rebuild a table from :meth:`to_dict` output.

        Args:
            data: Dict with ``times``, ``form``, ``ratio``, ``weights`` and optionally ``known``.

        Returns:
            The table.

        Raises:
            ValueError: If a key is missing.
        """
        missing = {"times", "form", "ratio", "weights"} - set(data)
        if missing:
            raise ValueError(f"a multistep table needs the keys {sorted(missing)}")
        return cls(times=torch.as_tensor(data["times"], dtype=torch.float64), form=data["form"],
                   ratio=tuple(data["ratio"]), weights=tuple(tuple(r) for r in data["weights"]),
                   known=None if data.get("known") is None else tuple(data["known"]))


def data_form_weights(order: int, solver_type: str, h: float, h1: float, h2: float) -> list[float]:
    """Weights (before the factor d_t) of x̂1_s, x̂1_{s−1}, x̂1_{s−2} in one data-form multistep step.

    Order 1 is φ_1 (DDIM); order 2 is DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): ``"midpoint"`` gives
    φ_1·(x̂1_s + (h/(2h_1))(x̂1_s − x̂1_{s−1})), ``"heun"`` φ_1·x̂1_s + φ_2·(x̂1_s − x̂1_{s−1})/h_1 (= DBIM order 2,
    Zheng et al. ICLR'25 eq. 15); order 3 integrates the quadratic in λ through the last three predictions exactly,
    φ_1·x̂1_s + φ_2·D' + φ_3·D'' (the Taylor-correct 3M, = DBIM order 3; ``reference/samplers.md`` §2, §5).

    Args:
        order: 1, 2 or 3.
        solver_type: Second-order variant, ``"midpoint"`` or ``"heun"``.
        h: λ_t − λ_s.
        h1: λ_s − λ_{s−1} (used for order ≥ 2).
        h2: λ_{s−1} − λ_{s−2} (order 3).

    Returns:
        ``order`` weights.
    """
    phi1, phi2, phi3 = phi_functions(h)
    if order == 1:
        return [phi1]
    if order == 2:
        if solver_type == "midpoint":  # φ1·(m0 + ½·(h/h1)·(m0 − m1))
            c = 0.5 * phi1 * h / h1
            return [phi1 + c, -c]
        c = phi2 / h1  # φ2·(m0 − m1)/h1
        return [phi1 + c, -c]
    # order 3: exact integral of the quadratic through (λ_s, m0), (λ_s − h1, m1), (λ_s − h1 − h2, m2)
    s12 = h1 + h2
    d1 = [(2 * h1 + h2) / (h1 * s12), -(2 * h1 + h2) / (h1 * s12) - h1 / (h2 * s12), h1 / (h2 * s12)]
    d2 = [2 / (h1 * s12), -2 / (h1 * s12) - 2 / (h2 * s12), 2 / (h2 * s12)]
    return [phi1 * (j == 0) + phi2 * a + phi3 * b for j, (a, b) in enumerate(zip(d1, d2))]


def data_form_table(tab: SemilinearGrid, orders: Sequence[int], *, solver_type: str = "heun") -> MultistepTable:
    """The data-form table of steps of the given orders on a grid (DPM-Solver++ kM, DBIM high order).

    Step i: ratio n_{i+1}/n_i, known-source coefficient k_{i+1} − k_i·n_{i+1}/n_i and weights
    d_{i+1}·:func:`data_form_weights` — the exact solution of the semilinear ODE with x̂1 polynomial in λ
    (Lu et al. 2022, eq. 9; Zheng et al. ICLR'25, eq. 15; ``reference/samplers.md`` §0, §5).

    Args:
        tab: Semilinear coefficients of the grid.
        orders: One order (1, 2 or 3) per step; order k at step i needs i ≥ k − 1.
        solver_type: Second-order formula (see :func:`data_form_weights`).

    Returns:
        The table (``known`` set on bridges).

    Raises:
        ValueError: If ``orders`` does not have one entry per step.
    """
    n = tab.t.numel() - 1
    if len(orders) != n:
        raise ValueError(f"orders needs one entry per step ({n}), got {len(orders)}")
    lam = [float(v) for v in tab.lam]
    ratios, rows = [], []
    knowns: list[float] | None = [] if tab.known is not None else None
    for i, p in enumerate(orders):
        h = lam[i + 1] - lam[i]
        h1 = lam[i] - lam[i - 1] if p >= 2 else math.nan
        h2 = lam[i - 1] - lam[i - 2] if p >= 3 else math.nan
        d_next = float(tab.data[i + 1])
        rows.append(tuple(d_next * w for w in data_form_weights(p, solver_type, h, h1, h2)))
        ratio = float(tab.noise[i + 1]) / float(tab.noise[i])
        ratios.append(ratio)
        if knowns is not None:
            knowns.append(float(tab.known[i + 1]) - float(tab.known[i]) * ratio)
    return MultistepTable(times=tab.t, form="data", ratio=tuple(ratios), weights=tuple(rows),
                          known=None if knowns is None else tuple(knowns))


# ---------------------------------------------------------------------------------------------- the engine
def combine(x: Tensor, ratio: float, known: float, x_src: Tensor | None, weights: Sequence[float],
            preds: Sequence[Tensor]) -> Tensor:
    """``ratio·x + known·x_src + Σ_j weights[j]·preds[j]`` in one allocation (zero terms skipped, so a zero ratio
    onto the data end never multiplies the state).

    Args:
        x: Current state.
        ratio: Coefficient of the state.
        known: Coefficient of the known source.
        x_src: Known source (``None`` on Gaussian-source paths).
        weights: Weights of the predictions.
        preds: Predictions (at least as many as weights).

    Returns:
        The new state.
    """
    out = x * ratio if ratio != 0.0 else torch.zeros_like(x)
    if x_src is not None and known != 0.0:
        out.add_(x_src * known)
    for w, p in zip(weights, preds):
        if w != 0.0:
            out.add_(p * w)  # product then sum (no fused multiply-add): the same rounding on every device
    return out


def run_multistep(
    field: CountingField,
    x: Tensor,
    grid: Tensor,
    table: MultistepTable,
    *,
    cond: Any | None = None,
    x_src: Tensor | None = None,
    report: Callable[[int, Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Drive ``table`` along ``grid``: one evaluation per step, predictions of the table's kind kept as history.

    Args:
        field: The (counting) field.
        x: State at ``grid[0]``.
        grid: The grid on ``x``'s device (same times as ``table.times``).
        table: The coefficients.
        cond: Conditioning passed to the field.
        x_src: Known source for tables with ``known`` coefficients.
        report: Called as ``report(i, x_{i+1}, p_i)`` after step i; the loop continues from what it returns
            (the post-step hook of guidance may correct the state).

    Returns:
        The state at ``grid[-1]``.

    Raises:
        ValueError: If the grid does not have the table's number of steps, or a bridge table has no ``x_src``.
    """
    if grid.numel() != table.steps + 1:
        raise ValueError(f"the table has {table.steps} steps but the grid {grid.numel() - 1}")
    if table.known is not None and x_src is None and any(k != 0.0 for k in table.known):
        raise ValueError("this table has known-source coefficients: pass x_src (the bridge's known x0)")
    kind = FORMS[table.form]
    depth = table.depth
    history: list[Tensor] = []  # newest first
    known = table.known if table.known is not None else (0.0,) * table.steps
    for i, row in enumerate(table.weights):
        pred = field.evaluate(x, grid[i], cond)(kind)
        history = [pred, *history[: depth - 1]]
        x = combine(x, table.ratio[i], known[i], x_src, row, history)
        if report is not None:
            x = report(i, x, pred)
    return x


class TableSampler(Sampler):
    """A sampler that is a table: subclasses implement :meth:`build_table`, the loop is :func:`run_multistep`."""

    requires: ClassVar[frozenset[str]] = frozenset({"semilinear"})

    @abstractmethod
    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        """The coefficient table of this method on ``grid`` for ``interpolant``.

        Args:
            interpolant: The path.
            grid: ``(N+1,)`` times.

        Returns:
            :class:`MultistepTable`.
        """

    def _aux(self, table: MultistepTable) -> dict[str, Any]:
        """Extra output of :meth:`sample` (``SampleResult.aux``)."""
        return {}

    def resolve_table(self, field: Field, grid: Tensor) -> tuple[MultistepTable, dict[str, Any]]:
        """The table :meth:`sample` runs for ``field`` on ``grid`` and its ``aux`` output.

        Default: :meth:`build_table` on the field's path; a sampler whose table depends on the field itself (a
        searched preset chosen by path and kind) overrides this.
        """
        table = self.build_table(field.interpolant, grid)
        return table, self._aux(table)

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
        table, aux = self.resolve_table(field.field, grid)
        x_src = field.field.known_source(cond) if table.known is not None else None
        data_form = table.form == "data"

        def report(i: int, x_next: Tensor, pred: Tensor) -> Tensor:
            return self._report(i, grid, x_next, callback, trajectory, x1_hat=pred if data_form else None)

        x = run_multistep(field, x, grid, table, cond=cond, x_src=x_src, report=report)
        return x, aux


class MultistepTableSampler(TableSampler):
    """Runs an explicit :class:`MultistepTable` (a searched or hand-made preset) through the one engine.

    The grid passed to :meth:`sample` must be the table's grid. Not registered by name: it needs its table.

    Args:
        table: The coefficients (with their grid).
    """

    name: ClassVar[str] = "multistep_table"

    def __init__(self, table: MultistepTable) -> None:
        if not isinstance(table, MultistepTable):
            raise TypeError(f"table must be a MultistepTable (see MultistepTable.from_dict), got "
                            f"{type(table).__name__}")
        self.preset = table

    def check(self, field: Field) -> None:
        super().check(field)
        interp = field.interpolant
        if self.preset.form == "noise" and not interp.gaussian_source:
            raise ValueError(f"sampler {self.name!r}: a noise-form table needs a Gaussian-source path, got {interp!r}")
        if self.preset.known is not None and not interp.conditional_source:
            raise ValueError(f"sampler {self.name!r}: a table with known-source coefficients needs a bridge with a "
                             f"known source, got {interp!r}")

    def build_table(self, interpolant: Interpolant, grid: Tensor) -> MultistepTable:
        times = grid.detach().to("cpu", torch.float64)
        if times.shape != self.preset.times.shape or not torch.equal(times, self.preset.times):
            raise ValueError("the grid differs from the table's times: pass table.times as the grid")
        return self.preset
