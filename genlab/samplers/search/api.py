"""``search_solver``: a searched solver for (field, NFE budget, data/noise), written as a preset.

Methods (``method=``):

* ``"dss"`` — the differentiable solver search (:func:`~genlab.samplers.search.neural.fit_neural_solver`) from the
  hand-designed base;
* ``"evolution"`` — the AutoDiffusion-style evolutionary search over grids and per-step orders
  (:func:`~genlab.samplers.search.evolution.evolutionary_search`);
* ``"evolution+dss"`` (default) — the evolutionary search's best candidate refined by the differentiable search.

Every method starts from the hand-designed solver (``base`` on the ``init_grid`` grid) and keeps the best candidate
by its error on held-out noises, so the searched solver is never worse than its start on those noises.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from genlab.models.field import Field
from genlab.samplers.search.evolution import evolutionary_search
from genlab.samplers.search.neural import _base_sampler, base_table, fit_neural_solver
from genlab.samplers.search.problem import SearchProblem, make_problem
from genlab.samplers.searched import SolverPreset

__all__ = ["METHODS", "SearchResult", "search_solver"]

METHODS = ("dss", "evolution", "evolution+dss")


@dataclass
class SearchResult:
    """A search's outcome.

    Attributes:
        preset: The searched solver (save it with ``preset.save(path)``).
        start_error: Held-out endpoint error (RMS distance to the teacher) of the hand-designed start.
        error: Held-out endpoint error of the searched solver.
        history: ``(stage, step, nfe_spent, best error)`` rows; the error column never increases within a stage.
        nfe_spent: Network evaluations the search spent (teacher, candidates, training roll-outs; batched calls).
        seconds: Wall time.
        problem: The search problem (noises, teacher).
    """

    preset: SolverPreset
    start_error: float
    error: float
    history: list[tuple[str, int, int, float]]
    nfe_spent: int
    seconds: float
    problem: SearchProblem = field(repr=False)


class _Progress:
    """tqdm when installed and enabled, else plain lines on stderr."""

    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self.enabled, self.bar, self.n, self.total, self.desc = enabled, None, 0, total, desc
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, file=sys.stderr)
            except ImportError:
                self.bar = None

    def update(self, stage: str, err: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(f"{stage} err={err:.4g}")
            self.bar.update(1)
        else:
            print(f"[{self.desc}] {self.n}/{self.total} {stage} best err={err:.4g}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def search_solver(
    field: Field,
    nfe: int,
    *,
    method: str = "evolution+dss",
    shape: Sequence[int] | None = None,
    noises: int = 256,
    x_init: Tensor | None = None,
    cond: Any | None = None,
    base: str = "dpmpp_2m",
    init_grid: str = "log_snr",
    teacher: str = "dpmpp_3m",
    teacher_steps: int = 200,
    t_start: float | None = None,
    t_end: float | None = None,
    seed: int = 0,
    model: str = "field",
    evolution_options: dict[str, Any] | None = None,
    dss_options: dict[str, Any] | None = None,
    fitness: Callable[[Tensor, Tensor], float] | None = None,
    problem: SearchProblem | None = None,
    progress: bool = False,
) -> SearchResult:
    """Search a solver for ``field`` at ``nfe`` evaluations and return it as a preset.

    Example:
        >>> res = search_solver(field, 5, shape=(2,), model="moons_si")  # doctest: +SKIP
        >>> res.preset.save("moons_nfe5.json")  # doctest: +SKIP
        >>> genlab.sample(field, sampler="searched", preset="moons_nfe5.json", steps=5, n=64, shape=(2,))  # doctest: +SKIP

    Args:
        field: The field (a Gaussian-source path, or a bridge with ``x_init``/``cond``).
        nfe: NFE budget (= steps; ≥ 2).
        method: ``"dss"``, ``"evolution"`` or ``"evolution+dss"``.
        shape: Per-sample shape (Gaussian source).
        noises: Number of search noises (a quarter held out for selection).
        x_init: Initial states instead of drawn noise (bridges: the known sources).
        cond: Conditioning (bridges).
        base: Hand-designed start: ``"dpmpp_1s"`` (DDIM; with ``init_grid="uniform"`` the paper's Euler start),
            ``"dpmpp_2m"`` (default) or ``"dpmpp_3m"``.
        init_grid: Grid of the start: ``"log_snr"`` (default) or ``"uniform"``.
        teacher: Sampler of the many-step teacher.
        teacher_steps: Its steps (log-SNR grid, same ends).
        t_start: First grid time (default: the log-SNR grid's).
        t_end: Last grid time (default: the log-SNR grid's; finite λ).
        seed: Seed of the noises and the search.
        model: Model name (provenance).
        evolution_options: Options of :func:`~genlab.samplers.search.evolution.evolutionary_search`.
        dss_options: Options of :func:`~genlab.samplers.search.neural.fit_neural_solver`.
        fitness: Evolution fitness ``(x_end, index) -> float`` (default: distance to the teacher's samples).
        problem: A prepared :class:`SearchProblem` (skips drawing noises and running the teacher).
        progress: Show a progress bar (tqdm if installed, else plain lines).

    Returns:
        :class:`SearchResult`.

    Raises:
        ValueError: For an unknown ``method`` or ``base``, or a problem with another budget.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    smp = _base_sampler(base)
    t0 = time.perf_counter()
    if problem is None:
        problem = make_problem(field, nfe, shape=shape, noises=noises, x_init=x_init, cond=cond, teacher=teacher,
                               teacher_steps=teacher_steps, t_start=t_start, t_end=t_end, seed=seed, model=model)
    elif problem.nfe != nfe or problem.field is not field:
        raise ValueError("problem was built for another field or budget (problem.nfe must equal nfe)")
    smp.check(field)
    start = base_table(problem, base, init_grid)
    val = problem.validation
    start_error = problem.error(problem.run_table(start, val), val)
    history: list[tuple[str, int, int, float]] = [("start", 0, problem.nfe_spent, start_error)]
    evo_opts = dict(evolution_options or {})
    dss_opts = dict(dss_options or {})
    total = 0
    if "evolution" in method:
        total += int(evo_opts.get("epochs", 8))
    if "dss" in method:
        it, every = int(dss_opts.get("iterations", 150)), int(dss_opts.get("eval_every", 10))
        total += -(-it // every)
    bar = _Progress(total, progress, f"search nfe={nfe}")
    table, best_error, extras = start, start_error, {}
    try:
        if "evolution" in method:
            evo = evolutionary_search(problem, start, solver_type=smp.solver_type, fitness=fitness, seed=seed,
                                      progress=lambda e, f: bar.update("evolution", f), **evo_opts)
            history += [("evolution", e, n, f) for e, n, f in evo.history]
            err = problem.error(problem.run_table(evo.table, val), val)
            extras["evolution"] = {"fitness": evo.fitness, "held_out_error": err, "evaluated": evo.evaluated,
                                   "seconds": round(evo.seconds, 2), "orders": list(evo.candidate[1]),
                                   **{k: v for k, v in evo_opts.items() if isinstance(v, (int, float, str))}}
            if err <= best_error:
                table, best_error = evo.table, err
        if "dss" in method:
            fit = fit_neural_solver(problem, table, solver_type=smp.solver_type, seed=seed,
                                    progress=lambda i, e: bar.update("dss", e), **dss_opts)
            history += [("dss", i, n, e) for i, n, e in fit.history]
            err = fit.history[-1][2]
            extras["dss"] = {"held_out_error": err, "parameters": fit.solver.num_parameters(),
                             "seconds": round(fit.seconds, 2),
                             **{k: v for k, v in dss_opts.items() if isinstance(v, (int, float, str))}}
            if err <= best_error:
                table, best_error = fit.table, err
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    provenance = {
        "model": model, "path": problem.path, "field_kind": field.kind, "nfe": nfe, "loss": best_error,
        "loss_definition": "RMS distance of the endpoints to the teacher's, held-out noises",
        "start_loss": start_error, "method": method, "base": base, "init_grid": init_grid,
        "teacher": problem.teacher, "noises": int(problem.x_init.shape[0]),
        "held_out_noises": int(problem.validation.numel()), "seed": seed, "search_nfe": problem.nfe_spent,
        "search_seconds": round(seconds, 2), "orders": list(table.orders), **extras,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__,
    }
    preset = SolverPreset(table=table, provenance=provenance, name=f"{model}_nfe{nfe}")
    return SearchResult(preset=preset, start_error=start_error, error=best_error, history=history,
                        nfe_spent=problem.nfe_spent, seconds=seconds, problem=problem)
