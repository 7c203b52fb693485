"""AutoDiffusion-style evolutionary search over time grids and per-step solver choice.

Li et al., "AutoDiffusion: Training-Free Optimization of Time Steps and Architectures for Automated Diffusion
Model Acceleration", ICCV'23 (lilijiangg/AutoDiffusion; ``reference/samplers.md`` §6.2). A candidate is a grid of
n + 1 times between fixed ends plus, per step, the order of the data-form multistep solver (1 = DDIM/DPM-Solver++
(1S), 2 = DPM-Solver++(2M), 3 = Taylor-correct 3M; order k at step i needs i ≥ k − 1). Fitness: a sample-quality
objective, by default the RMS distance of the candidate's samples to the teacher's samples from the same noises
(AutoDiffusion uses FID of generated samples; any ``fitness`` callable on the endpoints can be passed, e.g. digits
FD).

Algorithm (``EvolutionSearcher.search``): the population starts with the hand-designed candidate, mutations of it
(probability 0.1 per gene) and random candidates; each epoch keeps the ``select`` fittest (a visited-cache avoids
re-evaluation), adds ``mutations`` mutants of them (each gene replaced with probability ``m_prob`` by an unused
candidate time / a random order) and ``crossovers`` children of two parents, and refills with random candidates.
genlab's fix of the reference's crossover quirk (duplicate timesteps silently dropped there): a child draws its n − 1
interior times from the union of its parents' times, so it always has n steps. Scaled down for CPU (population 24,
8 epochs instead of 50 and 10); the elite is kept, so the best fitness never increases.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.samplers.multistep import MultistepTable, data_form_table
from genlab.samplers.search.problem import F64, SearchProblem, candidate_times
from genlab.samplers.semilinear import semilinear_grid

__all__ = ["Candidate", "EvolutionResult", "evolutionary_search"]

#: Candidate = (interior times, orders): hashable.
Candidate = tuple[tuple[float, ...], tuple[int, ...]]


@dataclass
class EvolutionResult:
    """Output of :func:`evolutionary_search`.

    Attributes:
        table: The fittest candidate's table.
        candidate: Its (interior times, orders).
        fitness: Its fitness (search noises).
        history: ``(epoch, nfe_spent, best fitness)`` per epoch (non-increasing fitness).
        evaluated: Number of distinct candidates evaluated.
        seconds: Wall time.
    """

    table: MultistepTable
    candidate: Candidate
    fitness: float
    history: list[tuple[int, int, float]]
    evaluated: int
    seconds: float


def _valid_orders(orders: Sequence[int], max_order: int) -> tuple[int, ...]:
    return tuple(max(1, min(int(p), i + 1, max_order)) for i, p in enumerate(orders))


def evolutionary_search(
    problem: SearchProblem,
    start: MultistepTable,
    *,
    solver_type: str = "midpoint",
    population: int = 24,
    epochs: int = 8,
    select: int = 8,
    mutations: int = 10,
    crossovers: int = 6,
    m_prob: float = 0.25,
    max_order: int = 3,
    pool_size: int = 200,
    fitness: Callable[[Tensor, Tensor], float] | None = None,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> EvolutionResult:
    """Evolve grids and per-step orders from ``start`` (the hand-designed candidate) on ``problem``.

    Args:
        problem: The search problem (field, noises, teacher).
        start: The hand-designed table (its grid and orders are the first candidate).
        solver_type: Second-order formula of the order-2 steps.
        population: Population size.
        epochs: Number of epochs.
        select: Survivors per epoch (top-k).
        mutations: Mutants per epoch.
        crossovers: Crossover children per epoch.
        m_prob: Per-gene mutation probability.
        max_order: Largest per-step order (1–3).
        pool_size: Candidate times: this many log-SNR-uniform plus as many t-uniform times inside the ends.
        fitness: ``fitness(x_end, index) -> float`` (lower is better); default the RMS distance to the teacher's
            samples on the non-held-out noises.
        seed: Seed.
        progress: Called as ``progress(epoch, best_fitness)``.

    Returns:
        :class:`EvolutionResult`.
    """
    for v, name in ((population, "population"), (epochs, "epochs"), (select, "select"), (pool_size, "pool_size")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not 0.0 <= m_prob <= 1.0:
        raise ValueError(f"m_prob must be in [0, 1], got {m_prob!r}")
    if max_order not in (1, 2, 3):
        raise ValueError(f"max_order must be 1, 2 or 3, got {max_order!r}")
    t0 = time.perf_counter()
    interp = problem.field.interpolant
    n = problem.nfe
    pool = [float(v) for v in candidate_times(problem, pool_size)]
    ends = (float(start.times[0]), float(start.times[-1]))
    m = problem.x_init.shape[0]
    val = set(problem.validation.tolist())
    search_idx = torch.tensor([i for i in range(m) if i not in val], dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))

    def rand(k: int) -> Tensor:
        return torch.rand(k, generator=gen, dtype=F64)

    def table_of(c: Candidate) -> MultistepTable:
        grid = torch.tensor([ends[0], *c[0], ends[1]], dtype=F64)
        return data_form_table(semilinear_grid(interp, grid), list(c[1]), solver_type=solver_type)

    cache: dict[Candidate, float] = {}

    def score(c: Candidate) -> float:
        if c not in cache:
            try:
                x = problem.run_table(table_of(c), search_idx)
                f = fitness(x, search_idx) if fitness is not None else problem.error(x, search_idx)
                cache[c] = f if math.isfinite(f) else float("inf")
            except (ValueError, RuntimeError):
                cache[c] = float("inf")
        return cache[c]

    def make(times: Sequence[float], orders: Sequence[int]) -> Candidate | None:
        ts = tuple(sorted({float(v) for v in times}))
        if len(ts) != n - 1:
            return None
        return ts, _valid_orders(orders, max_order)

    def random_candidate() -> Candidate:
        idx = torch.randperm(len(pool), generator=gen)[: n - 1]
        orders = (torch.randint(1, max_order + 1, (n,), generator=gen)).tolist()
        c = make([pool[i] for i in idx.tolist()], orders)
        assert c is not None
        return c

    def mutate(c: Candidate, prob: float) -> Candidate | None:
        times = list(c[0])
        used = set(times)
        for k in range(len(times)):
            if float(rand(1)) < prob:
                free = [v for v in pool if v not in used]
                new = free[int(torch.randint(len(free), (1,), generator=gen))]
                used.discard(times[k])
                used.add(new)
                times[k] = new
        orders = [int(torch.randint(1, max_order + 1, (1,), generator=gen)) if float(rand(1)) < prob else p
                  for p in c[1]]
        return make(times, orders)

    def crossover(a: Candidate, b: Candidate) -> Candidate | None:
        union = sorted(set(a[0]) | set(b[0]))
        idx = torch.randperm(len(union), generator=gen)[: n - 1].tolist()
        pick = rand(n)
        orders = [a[1][i] if float(pick[i]) < 0.5 else b[1][i] for i in range(n)]
        return make([union[i] for i in idx], orders)

    first = make([float(v) for v in start.times[1:-1]], start.orders)
    assert first is not None
    pop: list[Candidate] = [first]
    while len(pop) < population // 2:
        c = mutate(first, 0.1)
        if c is not None and c not in pop:
            pop.append(c)
    while len(pop) < population:
        c = random_candidate()
        if c not in pop:
            pop.append(c)
    history: list[tuple[int, int, float]] = []
    best: Candidate = first
    for epoch in range(epochs):
        ranked = sorted(set(pop), key=score)
        if score(ranked[0]) <= score(best):
            best = ranked[0]
        history.append((epoch, problem.nfe_spent, score(best)))
        if progress is not None:
            progress(epoch, score(best))
        if epoch == epochs - 1:
            break
        top = ranked[:select]
        nxt = list(top)
        tries = 0
        while len(nxt) < select + mutations and tries < 20 * population:
            tries += 1
            c = mutate(top[int(torch.randint(len(top), (1,), generator=gen))], m_prob)
            if c is not None and c not in nxt:
                nxt.append(c)
        tries = 0
        while len(nxt) < select + mutations + crossovers and tries < 20 * population and len(top) > 1:
            tries += 1
            i, j = torch.randperm(len(top), generator=gen)[:2].tolist()
            c = crossover(top[i], top[j])
            if c is not None and c not in nxt:
                nxt.append(c)
        while len(nxt) < population:
            c = random_candidate()
            if c not in nxt:
                nxt.append(c)
        pop = nxt
    return EvolutionResult(table=table_of(best), candidate=best, fitness=score(best), history=history,
                           evaluated=len(cache), seconds=time.perf_counter() - t0)
