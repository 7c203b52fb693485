"""What every solver search works on: a field, an NFE budget, noise, and a many-step teacher from that noise.

A :class:`SearchProblem` holds the frozen field, the search noises (initial states at the grid's first time), the
teacher's trajectory from the same noises on a fine grid (NeuralSolver's teacher is a 100-step Euler run,
``reference/samplers.md`` §6.1; genlab's default teacher is DPM-Solver++(3M) with 200 log-SNR steps, which is far
more accurate on the same budget), and the grid ends. It evaluates candidate tables on the noises and counts every
network evaluation the search spends (``nfe_spent``).

The data-form weights are also written here in torch (:func:`data_form_rows`), differentiable in the grid's λ,
so the differentiable search can learn the step sizes; they are the formulas of
:func:`genlab.samplers.multistep.data_form_weights` (DPM-Solver++, Lu et al. 2022, Alg. 2; Taylor-correct 3M).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from genlab.models.field import Field
from genlab.samplers.base import CountingField
from genlab.samplers.grids import log_snr
from genlab.samplers.multistep import MultistepTable, run_multistep
from genlab.samplers.registry import get_sampler
from genlab.samplers.searched import path_id
from genlab.utils import randn_per_sample

__all__ = ["SearchProblem", "candidate_times", "data_form_rows", "make_problem"]

F64 = torch.float64


def data_form_rows(lam: Tensor, data: Tensor, noise: Tensor, known: Tensor | None, orders: Sequence[int],
                   solver_type: str = "midpoint") -> tuple[list[Tensor], list[list[Tensor]], list[Tensor] | None]:
    """Ratios, weight rows and known-source coefficients of a data-form multistep table, differentiable in λ.

    Same formulas as :func:`genlab.samplers.multistep.data_form_table` (φ_1 = −expm1(−h), φ_2 = h − φ_1,
    φ_3 = h²/2 − φ_2; order 2 ``"midpoint"``/``"heun"``; order 3 the exact integral of the quadratic in λ).

    Args:
        lam: ``(N+1,)`` log-SNR at the grid times (finite).
        data: ``(N+1,)`` data coefficients.
        noise: ``(N+1,)`` noise coefficients.
        known: ``(N+1,)`` known-source coefficients (bridges) or ``None``.
        orders: One order (1, 2, 3) per step.
        solver_type: Second-order formula.

    Returns:
        ``(ratios, rows, knowns)`` as lists of 0-d tensors.
    """
    ratios, rows = [], []
    knowns: list[Tensor] | None = [] if known is not None else None
    for i, p in enumerate(orders):
        h = lam[i + 1] - lam[i]
        phi1 = -torch.expm1(-h)
        phi2 = h - phi1
        phi3 = 0.5 * h * h - phi2
        if p == 1:
            w = [phi1]
        elif p == 2:
            h1 = lam[i] - lam[i - 1]
            c = 0.5 * phi1 * h / h1 if solver_type == "midpoint" else phi2 / h1
            w = [phi1 + c, -c]
        else:
            h1, h2 = lam[i] - lam[i - 1], lam[i - 1] - lam[i - 2]
            s12 = h1 + h2
            d1 = [(2 * h1 + h2) / (h1 * s12), -(2 * h1 + h2) / (h1 * s12) - h1 / (h2 * s12), h1 / (h2 * s12)]
            d2 = [2 / (h1 * s12), -2 / (h1 * s12) - 2 / (h2 * s12), 2 / (h2 * s12)]
            w = [phi1 * (1.0 if j == 0 else 0.0) + phi2 * a + phi3 * b for j, (a, b) in enumerate(zip(d1, d2))]
        rows.append([data[i + 1] * v for v in w])
        ratio = noise[i + 1] / noise[i]
        ratios.append(ratio)
        if knowns is not None and known is not None:
            knowns.append(known[i + 1] - known[i] * ratio)
    return ratios, rows, knowns


@dataclass
class SearchProblem:
    """A field, an NFE budget, search noises and the teacher's trajectories from them.

    Attributes:
        field: The frozen field.
        nfe: NFE budget = number of steps (one evaluation per step).
        x_init: ``(M, ...)`` initial states at ``t_start`` (noise scaled by the path's level there).
        cond: Conditioning (bridges: the known sources, one per initial state), or ``None``.
        teacher_times: ``(K+1,)`` fine teacher grid (float64, CPU).
        teacher_states: ``(K+1, M, ...)`` teacher states on that grid (float64).
        t_start: First time of every searched grid.
        t_end: Last time.
        model: Name of the model (provenance).
        teacher: Description of the teacher (provenance).
        nfe_spent: Network evaluations spent so far (teacher included).
        validation: Indices of the noises held out from the differentiable search's mini-batches.
    """

    field: Field
    nfe: int
    x_init: Tensor
    cond: Any | None
    teacher_times: Tensor
    teacher_states: Tensor
    t_start: float
    t_end: float
    model: str
    teacher: str
    nfe_spent: int = 0
    validation: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def teacher_end(self) -> Tensor:
        """The teacher's endpoints ``(M, ...)``."""
        return self.teacher_states[-1]

    @property
    def path(self) -> str:
        """:func:`~genlab.samplers.searched.path_id` of the field's path."""
        return path_id(self.field.interpolant)

    def teacher_at(self, t: Tensor, index: Tensor | None = None) -> Tensor:
        """Teacher states at time ``t`` (0-d, may carry a gradient): linear interpolation on the teacher grid.

        Args:
            t: Time.
            index: Rows of the noises (default all).
        """
        tt = self.teacher_times.to(t.dtype)
        states = self.teacher_states if index is None else self.teacher_states[:, index]
        k = int(torch.searchsorted(tt, t.detach().reshape(1)).clamp(1, tt.numel() - 1))
        a = (t - tt[k - 1]) / (tt[k] - tt[k - 1])
        return states[k - 1] + a.to(states.dtype) * (states[k] - states[k - 1])

    def run_table(self, table: MultistepTable, index: Tensor | None = None) -> Tensor:
        """Endpoints of ``table`` from the search noises (no gradient; NFE counted in :attr:`nfe_spent`)."""
        x = self.x_init if index is None else self.x_init[index]
        cond = self.cond if index is None or self.cond is None else self.cond[index]
        counted = CountingField(self.field)
        x_src = self.field.known_source(cond) if table.known is not None else None
        with torch.no_grad():
            out = run_multistep(counted, x, table.times.to(x.device), table, cond=cond, x_src=x_src)
        self.nfe_spent += counted.nfe
        return out

    def error(self, x_end: Tensor, index: Tensor | None = None) -> float:
        """RMS distance of endpoints to the teacher's (per coordinate), the sample-quality objective."""
        ref = self.teacher_end if index is None else self.teacher_end[index]
        return float((x_end.to(F64) - ref.to(F64)).pow(2).mean().sqrt())


def _check_ends(field_: Field, t_start: float, t_end: float) -> None:
    s = field_.interpolant.semilinear(torch.tensor([t_start, t_end], dtype=F64), torch.zeros(2, dtype=F64))
    if not (torch.isfinite(s.lam).all() and bool((s.noise > 0).all())):
        raise ValueError(f"a searched grid needs finite log-SNR at both ends (t_start={t_start}, t_end={t_end}); "
                         "keep t_end < 1 and t_start > 0 where the path's λ is infinite (the log_snr grid's default "
                         "ends do so)")


def make_problem(
    field: Field,
    nfe: int,
    *,
    shape: Sequence[int] | None = None,
    noises: int = 256,
    x_init: Tensor | None = None,
    cond: Any | None = None,
    teacher: str = "dpmpp_3m",
    teacher_steps: int = 200,
    t_start: float | None = None,
    t_end: float | None = None,
    seed: int = 0,
    model: str = "field",
    validation_fraction: float = 0.25,
) -> SearchProblem:
    """Build a :class:`SearchProblem`: draw the noises and run the teacher once.

    Args:
        field: The field (frozen; a Gaussian-source path or a bridge with ``cond``).
        nfe: NFE budget (steps of the searched solver; ≥ 2).
        shape: Per-sample shape (Gaussian source, when ``x_init`` is not given).
        noises: Number of search noises.
        x_init: Initial states at ``t_start`` instead of drawn noise (bridges: the known sources).
        cond: Conditioning (bridges: known sources, one per state).
        teacher: Registered sampler of the teacher (default DPM-Solver++(3M)).
        teacher_steps: Steps of the teacher on a log-SNR grid between the same ends.
        t_start: First grid time (default: :func:`~genlab.samplers.grids.log_snr`'s default start).
        t_end: Last grid time (default: the log-SNR grid's default end, finite λ).
        seed: Seed of the noises.
        model: Model name for the provenance.
        validation_fraction: Share of the noises kept out of the differentiable search's mini-batches.

    Returns:
        The problem.

    Raises:
        ValueError: For a budget below 2, missing ``shape``, or ends with infinite log-SNR.
        TypeError: If ``field`` is not a :class:`~genlab.models.field.Field`.
    """
    if not isinstance(field, Field):
        raise TypeError(f"field must be a genlab Field, got {type(field).__name__}")
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 2:
        raise ValueError(f"nfe must be an integer ≥ 2 (one evaluation per step), got {nfe!r}")
    if isinstance(noises, bool) or not isinstance(noises, int) or noises < 4:
        raise ValueError(f"noises must be an integer ≥ 4, got {noises!r}")
    if isinstance(teacher_steps, bool) or not isinstance(teacher_steps, int) or teacher_steps < 2 * nfe:
        raise ValueError(f"teacher_steps must be an integer ≥ 2·nfe (a many-step teacher), got {teacher_steps!r}")
    interp = field.interpolant
    default = log_snr(2, interp)
    ts = float(default[0]) if t_start is None else float(t_start)
    te = float(default[-1]) if t_end is None else float(t_end)
    _check_ends(field, ts, te)
    params = list(field.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = torch.float64 if (params and params[0].dtype == torch.float64) or not params else params[0].dtype
    if x_init is None:
        if not interp.gaussian_source:
            raise ValueError("this path has a data source: pass x_init= (and cond=) — the known sources")
        if shape is None:
            raise ValueError("pass shape= (per-sample shape, e.g. (2,) or (1, 8, 8)) or x_init=")
        gen = torch.Generator().manual_seed(int(seed))
        z = randn_per_sample((noises, *shape), generator=gen, device=device, dtype=dtype)
        scale = interp.init_scale(torch.tensor(ts, dtype=F64), z)
        x_init = scale.reshape(-1, *([1] * len(shape))).to(z.dtype) * z
    grid = log_snr(teacher_steps, interp, t_start=ts, t_end=te)
    res = get_sampler(teacher).sample(field, x_init, grid, cond=cond, return_trajectory=True)
    states = torch.stack([s.to(F64) for s in res.trajectory])
    m = x_init.shape[0]
    n_val = max(1, round(validation_fraction * m))
    val = torch.arange(m - n_val, m)
    return SearchProblem(field=field, nfe=nfe, x_init=x_init, cond=cond, teacher_times=grid.cpu(),
                         teacher_states=states, t_start=ts, t_end=te, model=model,
                         teacher=f"{teacher}, {teacher_steps} log-SNR steps", nfe_spent=int(res.nfe),
                         validation=val)


def candidate_times(problem: SearchProblem, size: int = 200) -> Tensor:
    """Candidate interior times: ``size`` log-SNR-uniform and ``size`` t-uniform times strictly inside the ends."""
    a = log_snr(size + 1, problem.field.interpolant, t_start=problem.t_start, t_end=problem.t_end)[1:-1]
    b = torch.linspace(problem.t_start, problem.t_end, size + 1, dtype=F64)[1:-1]
    return torch.unique(torch.cat([a.cpu(), b]))

