"""Differentiable solver search (NeuralSolver / DSS): learned step sizes and multistep coefficients.

Paper and reference code: "Differentiable Solver Search for Fast Diffusion Sampling" (NeuralSolver, MCG-NJU;
``reference/samplers.md`` §6.1). The solver has **n(n+1)/2 parameters** for n steps:

* step sizes Δ = softmax(raw) — n positive values summing to 1 that split the time budget [t_start, t_end]
  (``t_{i+1} = t_i + Δ_i·(t_end − t_start)``);
* a strictly lower-triangular matrix c of multistep coefficients. NeuralSolver's velocity form is
  ``ṽ_i = v_i + Σ_{j<i} c_ij (v_j − v_i)``; genlab writes it in the data form of the coefficient-table engine: the
  data prediction of step i is replaced by ``x̄1_i = x̂1_i + Σ_{j<i} c_ij (x̂1_j − x̂1_i)`` inside the leading φ_1
  term of the base solver, i.e. row i of the table gains ``a_i·c_ij`` on x̂1_j and ``−a_i·Σ_j c_ij`` on x̂1_i with
  ``a_i = β_{i+1}·φ_1(h_i)`` (the weights still sum to the exact value for a constant prediction).

**Reconstructed / genlab choices (configurable):** the base is a hand-designed data-form solver (default
DPM-Solver++(2M) on the log-SNR grid; ``base="dpmpp_1s"`` with ``init_grid="uniform"`` is the paper's Euler start:
DDIM is Euler on rectified flow) and the parameters are initialised at that solver, so **at initial values the
searched table is the hand-designed one exactly** (the grid is written as the initial grid plus
``span·(cumsum softmax(raw) − cumsum softmax(raw₀))``, exactly zero at raw₀; c = 0). Loss: NeuralSolver's
``TrajsReWeightTrainer``, ``Σ_i MSE(x_i, x^teacher(t_i)) + 1000·Huber_{δ=1e-3}(x_n, x^teacher_end)``, with the
teacher's trajectory linearly interpolated at the student's times (the paper rounds to the nearest of 100 Euler
steps). Optimiser: Adam (the paper uses Lion, lr 1e-2, which torch does not ship); the parameters with the lowest
endpoint error on held-out noises are kept, so the recorded error never increases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from genlab.samplers.dpm_solver import DPMSolverPPMultistep
from genlab.samplers.grids import log_snr, uniform
from genlab.samplers.multistep import MultistepTable, data_form_table, phi_functions
from genlab.samplers.registry import get_sampler
from genlab.samplers.search.problem import F64, SearchProblem, data_form_rows
from genlab.samplers.semilinear import semilinear_grid

__all__ = ["BASES", "NeuralSolver", "NeuralSolverFit", "base_table", "fit_neural_solver"]

#: Hand-designed solvers a search can start from (data-form DPM-Solver++ family; ``dpmpp_1s`` is DDIM).
BASES = ("dpmpp_1s", "dpmpp_2m", "dpmpp_3m")


def _base_sampler(base: str) -> DPMSolverPPMultistep:
    if base not in BASES:
        raise ValueError(f"base must be one of {BASES} (hand-designed data-form solvers), got {base!r}")
    smp = get_sampler(base)
    assert isinstance(smp, DPMSolverPPMultistep)
    return smp


def base_table(problem: SearchProblem, base: str = "dpmpp_2m", init_grid: str = "log_snr") -> MultistepTable:
    """The hand-designed solver's table on its grid between the problem's ends (what a search starts from).

    Args:
        problem: The search problem.
        base: One of :data:`BASES`.
        init_grid: ``"log_snr"`` or ``"uniform"`` (in t).

    Returns:
        The table (exactly what ``get_sampler(base)`` runs on that grid).
    """
    if init_grid not in ("log_snr", "uniform"):
        raise ValueError(f"init_grid must be 'log_snr' or 'uniform', got {init_grid!r}")
    interp = problem.field.interpolant
    if init_grid == "log_snr":
        grid = log_snr(problem.nfe, interp, t_start=problem.t_start, t_end=problem.t_end)
    else:
        grid = uniform(problem.nfe, t_start=problem.t_start, t_end=problem.t_end)
    return _base_sampler(base).build_table(interp, grid.cpu())


class NeuralSolver(nn.Module):
    """The searched solver's parameters (softmax step sizes, lower-triangular coefficients) around a base table.

    Args:
        start: The hand-designed table it starts from (data form, Gaussian source or bridge).
        solver_type: Second-order formula of the base (``"midpoint"`` or ``"heun"``).
        history: How many past predictions the coefficients reach (default: all, n(n−1)/2 coefficients).
    """

    def __init__(self, start: MultistepTable, *, solver_type: str = "midpoint", history: int | None = None) -> None:
        super().__init__()
        if start.form != "data":
            raise ValueError("a neural solver starts from a data-form table")
        n = start.steps
        self.orders = start.orders
        self.solver_type = solver_type
        grid0 = start.times
        self.register_buffer("grid0", grid0.clone())
        span = float(grid0[-1] - grid0[0])
        self.span = span
        delta0 = (grid0[1:] - grid0[:-1]) / span
        if not bool((delta0 > 0).all()):
            raise ValueError("the start grid must be increasing")
        raw0 = torch.log(delta0)
        self.register_buffer("raw0", raw0.clone())
        self.register_buffer("cs0", torch.cumsum(torch.softmax(raw0, 0), 0))
        self.raw = nn.Parameter(raw0.clone())
        self.coef = nn.Parameter(torch.zeros(n, n, dtype=F64))
        reach = n if history is None else int(history)
        if reach < 0:
            raise ValueError(f"history must be ≥ 0, got {history!r}")
        mask = torch.zeros(n, n, dtype=F64)
        for i in range(n):
            for j in range(1, min(i, reach) + 1):
                mask[i, j] = 1.0  # newest-first index j: the prediction of step i − j
        self.register_buffer("mask", mask)

    @property
    def steps(self) -> int:
        """Number of steps n."""
        return int(self.raw.numel())

    def num_parameters(self) -> int:
        """n step sizes + the used coefficients (n(n+1)/2 with the full history)."""
        return self.steps + int(self.mask.sum())

    def times(self) -> Tensor:
        """The grid: the start grid plus ``span·(cumsum softmax(raw) − cumsum softmax(raw₀))`` (ends fixed)."""
        cs = torch.cumsum(torch.softmax(self.raw, 0), 0)
        interior = self.grid0[1:-1] + self.span * (cs[:-1] - self.cs0[:-1])
        return torch.cat([self.grid0[:1], interior, self.grid0[-1:]])

    def coefficients(self) -> Tensor:
        """The masked coefficient matrix ``c`` (row i, newest-first column j ≥ 1)."""
        return self.coef * self.mask

    def rollout(self, problem: SearchProblem, index: Tensor) -> list[Tensor]:
        """Differentiable run from the noises ``index``; returns the states at ``times()[1:]``."""
        fld = problem.field
        interp = fld.interpolant
        t = self.times()
        s = interp.semilinear(t, t)
        lam, data, noise = s.lam.to(F64), s.data.to(F64), s.noise.to(F64)
        known = None if s.known is None else s.known.to(F64)
        ratios, rows, knowns = data_form_rows(lam, data, noise, known, self.orders, self.solver_type)
        c = self.coefficients()
        x = problem.x_init[index]
        cond = None if problem.cond is None else problem.cond[index]
        x_src = fld.known_source(cond) if knowns is not None else None
        preds: list[Tensor] = []
        states = []
        for i in range(self.steps):
            # a (B,) time keeps the gradient through the output conversion (a 0-d time takes a float fast path)
            pred = fld.predict(x, t[i].reshape(1).expand(x.shape[0]), "x1", cond)
            preds.insert(0, pred)
            a = data[i + 1] * -torch.expm1(-(lam[i + 1] - lam[i]))
            weights = list(rows[i]) + [torch.zeros((), dtype=F64)] * (i + 1 - len(rows[i]))
            weights[0] = weights[0] - a * c[i].sum()
            for j in range(1, i + 1):
                weights[j] = weights[j] + a * c[i, j]
            new = ratios[i].to(x.dtype) * x
            if x_src is not None and knowns is not None:
                new = new + knowns[i].to(x.dtype) * x_src
            for w, p in zip(weights, preds):
                new = new + w.to(x.dtype) * p
            x = new
            states.append(x)
        return states

    def to_table(self, interpolant: Any) -> MultistepTable:
        """The current solver as a :class:`MultistepTable` (genlab's own float64 data-form weights + corrections).

        At the initial parameters this is exactly the base table (same grid, same weights, bit for bit).
        """
        with torch.no_grad():
            times = self.times().detach().cpu()
            c = self.coefficients().detach().cpu()
        tab = semilinear_grid(interpolant, times)
        table = data_form_table(tab, self.orders, solver_type=self.solver_type)
        lam = [float(v) for v in tab.lam]
        rows = []
        for i, row in enumerate(table.weights):
            ci = [float(v) for v in c[i, : i + 1]]
            if not any(v != 0.0 for v in ci):
                rows.append(row)
                continue
            a = float(tab.data[i + 1]) * phi_functions(lam[i + 1] - lam[i], 1)[0]
            w = list(row) + [0.0] * (i + 1 - len(row))
            w[0] = w[0] - a * sum(ci[1:])
            for j in range(1, i + 1):
                w[j] = w[j] + a * ci[j]
            while len(w) > 1 and w[-1] == 0.0:
                w.pop()
            rows.append(tuple(w))
        return MultistepTable(times=times, form="data", ratio=table.ratio, weights=tuple(rows), known=table.known)


def _huber(x: Tensor, delta: float) -> Tensor:
    a = x.abs()
    return torch.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta)).mean()


@dataclass
class NeuralSolverFit:
    """Output of :func:`fit_neural_solver`.

    Attributes:
        table: The best table found (lowest held-out endpoint error).
        solver: The fitted :class:`NeuralSolver` (at its best parameters).
        history: ``(iteration, nfe_spent, best held-out error)`` at every evaluation (non-increasing error).
        losses: Training loss per iteration.
        seconds: Wall time.
    """

    table: MultistepTable
    solver: NeuralSolver
    history: list[tuple[int, int, float]]
    losses: list[float]
    seconds: float


def fit_neural_solver(
    problem: SearchProblem,
    start: MultistepTable,
    *,
    solver_type: str = "midpoint",
    iterations: int = 150,
    batch: int = 64,
    lr: float = 5e-3,
    final_weight: float = 1000.0,
    huber_delta: float = 1e-3,
    history: int | None = None,
    eval_every: int = 10,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> NeuralSolverFit:
    """Fit a :class:`NeuralSolver` from ``start`` against the problem's teacher (NeuralSolver's trajectory loss).

    Args:
        problem: The search problem (field, noises, teacher).
        start: The hand-designed table to start from (:func:`base_table`, or an evolutionary search's best).
        solver_type: Second-order formula of ``start``'s order-2 steps.
        iterations: Optimiser steps.
        batch: Noises per step (drawn from the non-held-out ones).
        lr: Adam learning rate.
        final_weight: Weight of the Huber endpoint term (paper: 1000).
        huber_delta: Huber δ (paper: 1e-3).
        history: Past predictions the coefficients reach (default all).
        eval_every: Evaluate the held-out endpoint error every this many steps.
        seed: Seed of the mini-batches.
        progress: Called as ``progress(iteration, best_error)`` after each evaluation.

    Returns:
        :class:`NeuralSolverFit`.
    """
    for v, name in ((iterations, "iterations"), (batch, "batch"), (eval_every, "eval_every")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    t0 = time.perf_counter()
    solver = NeuralSolver(start, solver_type=solver_type, history=history)
    interp = problem.field.interpolant
    m = problem.x_init.shape[0]
    val = problem.validation
    held = set(val.tolist())
    train = torch.tensor([i for i in range(m) if i not in held], dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(solver.parameters(), lr=lr)
    best_err = problem.error(problem.run_table(solver.to_table(interp), val), val)
    best_state = {k: v.detach().clone() for k, v in solver.state_dict().items()}
    hist = [(0, problem.nfe_spent, best_err)]
    losses = []
    requires = [p.requires_grad for p in problem.field.parameters()]
    problem.field.requires_grad_(False)
    try:
        for it in range(1, iterations + 1):
            idx = train[torch.randperm(train.numel(), generator=gen)[: min(batch, train.numel())]]
            with torch.enable_grad():
                states = solver.rollout(problem, idx)
                problem.nfe_spent += solver.steps
                t = solver.times()
                loss = torch.zeros((), dtype=F64)
                for i, x in enumerate(states[:-1]):
                    loss = loss + (x.to(F64) - problem.teacher_at(t[i + 1], idx)).pow(2).mean()
                end = states[-1].to(F64) - problem.teacher_end[idx]
                loss = loss + end.pow(2).mean() + final_weight * _huber(end, huber_delta)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            if not all(bool(torch.isfinite(p.grad).all()) for p in solver.parameters() if p.grad is not None):
                break  # a non-finite gradient (e.g. a collapsed step): keep the best parameters so far
            opt.step()
            losses.append(float(loss.detach()))
            if it % eval_every == 0 or it == iterations:
                try:
                    err = problem.error(problem.run_table(solver.to_table(interp), val), val)
                except (ValueError, RuntimeError):
                    err = float("inf")
                if err < best_err:
                    best_err = err
                    best_state = {k: v.detach().clone() for k, v in solver.state_dict().items()}
                hist.append((it, problem.nfe_spent, best_err))
                if progress is not None:
                    progress(it, best_err)
    finally:
        for p, r in zip(problem.field.parameters(), requires):
            p.requires_grad_(r)
    solver.load_state_dict(best_state)
    return NeuralSolverFit(table=solver.to_table(interp), solver=solver, history=hist, losses=losses,
                           seconds=time.perf_counter() - t0)
