"""``solve``: one entry point for every inverse-problem method (guided sampling or iterative solver).

Guided sampling runs the registered sampler itself: the method enters it as a
:class:`~genlab.inverse.guided.GuidedField` (its prediction), a post-step hook (its correction) or a replacement of
the sampler's one-step transition (:attr:`Guidance.placement`); there is no private sampling loop here.

Example:
    >>> problem = InverseProblem(Inpainting(mask), y, sigma=0.05)          # doctest: +SKIP
    >>> res = solve(problem, prior, "pigdm", steps=100, n_samples=16, seed=0)  # doctest: +SKIP
    >>> res.samples.shape, res.nfe, res.n_vjp                               # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.inverse.guided import GuidedField
from genlab.inverse.methods import CountedModel, Guidance, IterativeSolver, SolveContext
from genlab.inverse.methods.base import resolve_sampler
from genlab.inverse.priors import DiffusionPrior
from genlab.inverse.problem import InverseProblem
from genlab.inverse.registry import get_method, missing_requirements
from genlab.progress import ProgressBar
from genlab.samplers.base import Sampler, StepInfo
from genlab.samplers.grids import make_grid
from genlab.utils import NoiseStream

__all__ = ["SolveResult", "solve"]


@dataclass
class SolveResult:
    """Output of :func:`solve`.

    Attributes:
        samples: ``(n_samples, *x_shape)`` pixel-space samples (latent methods decode).
        nfe: Network evaluations (measured by :class:`genlab.samplers.base.CountingField`).
        n_vjp: Backward passes that reached a network output (measured by an autograd tap).
        wall_time: Seconds spent in the method (setup, sampling and decoding).
        diagnostics: Per-step values (residual ``‖y − A x̂1‖``, guidance norm, CG iterations, trace estimates, ...).
        config: Fully resolved settings (method options, sampler, η, steps, grid ends, seed, prior, problem).
        n_jvp: Forward-over-reverse products (STSL's exact Hutchinson probes).
        latents: Final latent state for latent priors.
        trajectory: States at every grid time (when requested).
        particles: SMC samplers (``mcgdiff``, ``tds``): final particles ``(n_samples, n_particles, *x_shape)``.
        weights: SMC samplers: normalised final weights ``(n_samples, n_particles)``.
        ess: SMC samplers: effective sample size after each step's reweighting ``(steps, n_samples)``.
        n_resampled: SMC samplers: number of (step, sample) resampling events.
        files: Files written for this result (the picture of ``solve(..., picture=)`` / :meth:`save_picture`).
    """

    samples: Tensor
    nfe: int
    n_vjp: int
    wall_time: float
    diagnostics: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    n_jvp: int = 0
    latents: Tensor | None = None
    trajectory: list[Tensor] | None = None
    files: list[Path] = field(default_factory=list)
    particles: Tensor | None = None
    weights: Tensor | None = None
    ess: Tensor | None = None
    n_resampled: int = 0

    def save_picture(
        self, problem: InverseProblem, path: str | Path, *, ground_truth: Tensor | None = None, n_show: int = 8
    ) -> Path:
        """Write measurement | samples | posterior mean | posterior std | ground truth to ``path`` (PNG).

        See :func:`genlab.inverse.pictures.save_solve_picture`; the title names the method, NFE and wall time.
        """
        from genlab.inverse.pictures import save_solve_picture

        title = f"{self.config.get('method', '')}: {self.nfe} NFE, {self.wall_time:.1f} s"
        written = save_solve_picture(self.samples, problem, path, ground_truth=ground_truth, n_show=n_show, title=title)
        self.files.append(written)
        return written


def solve(
    problem: InverseProblem,
    prior: Any,
    method: str | Guidance | IterativeSolver,
    sampler: str | Sampler | None = None,
    steps: int | None = None,
    n_samples: int = 1,
    seed: int | None = None,
    *,
    eta: float | None = None,
    generator: torch.Generator | None = None,
    grid: str | Sequence[float] | Tensor = "uniform",
    t_start: float | None = None,
    t_end: float | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    return_trajectory: bool = False,
    picture: str | Path | None = None,
    ground_truth: Tensor | None = None,
    progress: bool | None = None,
    **kw: Any,
) -> SolveResult:
    """Draw ``n_samples`` approximate posterior samples of ``problem`` under ``prior`` with ``method``.

    Args:
        problem: The measurement (one ``y`` shared by all samples, or one per sample).
        prior: A :class:`DiffusionPrior` / :class:`LatentPrior` (or the prior type an iterative solver takes).
        method: Registered name (``genlab.inverse.available_methods()``) or a method instance.
        sampler: Any compatible registered sampler (name or instance; ``"ddpm"`` is ``"ddim"`` with η = 1), default
            the method's. Compatibility follows from the method's placement and the sampler's contract; an
            incompatible one is refused with the reason and the list of compatible names.
        steps: Number of grid steps (default: the method's paper default).
        n_samples: Number of samples.
        seed: Seed of a fresh CPU generator (ignored when ``generator`` is given).
        eta: η of samplers that take one (default for ``"ddim"``: the method's).
        generator: Random generator; it seeds one :class:`~genlab.utils.NoiseStream` per sample shared by the
            initial noise, the sampler and the method, so sample ``i`` does not depend on how many are drawn.
        grid: Grid name (``uniform``, ``power``, ``log_snr``, ``karras``) or explicit increasing times.
        t_start: First time of a named grid (default: the grid's, 0 = pure noise for ``uniform``; > 0 starts
            part-way, SDEdit-style).
        t_end: Last time of a named grid (default: the grid's, 1 for ``uniform``).
        callback: Called with a :class:`~genlab.samplers.StepInfo` after each step (passed to the sampler).
        return_trajectory: Keep the state at every grid time (passed to the sampler).
        picture: Write measurement | samples | posterior mean/std | ground truth to this PNG (named in
            ``SolveResult.files``).
        ground_truth: The unknown ``x``, shown in the picture when given.
        progress: Bar over the sampler's steps (``None``: when stderr is a terminal, rank 0 only).
        **kw: The method's hyper-parameters (see its ``DEFAULTS``); an unknown key is an error.

    Returns:
        :class:`SolveResult`.

    Raises:
        ValueError: when the method cannot run on this problem/prior/sampler (the message lists what is missing).
    """
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an InverseProblem, got {type(problem).__name__}")
    if picture is not None:
        picture = Path(picture)
        if picture.suffix != ".png":
            raise ValueError(f"picture must be a .png path; got {str(picture)!r}")
        result = solve(problem, prior, method, sampler, steps, n_samples, seed, eta=eta, generator=generator,
                       grid=grid, t_start=t_start, t_end=t_end, callback=callback,
                       return_trajectory=return_trajectory, progress=progress, **kw)
        result.save_picture(problem, picture, ground_truth=ground_truth)
        return result
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    m = get_method(method, **kw)
    if isinstance(m, IterativeSolver) and "steps" in m.DEFAULTS:  # SMC samplers: solve()'s steps/t_end are theirs
        routed = {k: v for k, v in (("steps", steps), ("t_end", t_end)) if v is not None and k in m.DEFAULTS}
        if routed:
            m = type(m)(**{**m.options, **routed})
            steps = None if "steps" in routed else steps
            t_end = None if "t_end" in routed else t_end
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    if isinstance(m, IterativeSolver):
        refused = {k: v for k, v in (("steps", steps), ("eta", eta), ("callback", callback),
                                     ("t_start", t_start), ("t_end", t_end)) if v is not None}
        if return_trajectory:
            refused["return_trajectory"] = True
        if not isinstance(grid, str) or grid != "uniform":
            refused["grid"] = grid
        if refused:
            raise ValueError(f"method {m.name!r} is an iterative solver; it takes no {sorted(refused)} (those are "
                             "options of guided sampling)")
        return _run_iterative(m, problem, prior, sampler, n_samples, seed, generator)

    sampler_name = sampler if sampler is not None else m.default_sampler
    if eta is None and sampler_name == "ddim":
        eta = m.default_eta
    missing = missing_requirements(m, problem, prior, sampler_name, eta)
    if missing:
        raise ValueError(f"method {m.name!r} cannot run here; it needs " + "; ".join(missing))
    smp = resolve_sampler(sampler_name, eta)
    n_steps = m.default_steps if steps is None else steps
    if isinstance(grid, str):
        ends = {k: v for k, v in (("t_start", t_start), ("t_end", t_end)) if v is not None}
        ends = {**_regular_ends(prior, smp, n_steps), **ends}
        times = make_grid(grid, n_steps, prior.interpolant, **ends)
    else:
        if steps is not None or t_start is not None or t_end is not None:
            raise ValueError("an explicit grid fixes the steps and its ends; drop steps=, t_start=, t_end=")
        times = make_grid(grid)
    if not bool((times[1:] > times[:-1]).all()):
        raise ValueError("the grid must increase from noise (t ≈ 0) to data (t = 1)")
    times = times.to(problem.y.device)
    prob = problem.expand(n_samples)
    streams = NoiseStream(n_samples, generator) if generator is not None else None
    ctx = SolveContext(problem=prob, prior=prior, model=CountedModel(prior), transition=smp.step_map(), grid=times,
                       x_shape=tuple(prob.x_shape), state_shape=prior.state_shape(prob.x_shape),
                       n_samples=n_samples, generator=streams)
    guided = GuidedField(m, ctx)
    start = time.perf_counter()
    with torch.no_grad():
        m.setup(ctx)
        x_init = m.init_state(ctx)
    with ProgressBar(int(times.numel() - 1), desc=f"solving ({m.name})", progress=progress, then=callback) as bar:
        run = smp.sample(guided, x_init, times, generator=streams, callback=bar.callback(),
                         return_trajectory=return_trajectory,
                         hook=guided.hook if m.placement == "hook" else None,
                         transition=guided.transition if m.placement == "transition" else None)
    x = run.x.detach()
    samples = m.finalize(x, ctx)
    wall = time.perf_counter() - start
    config = {
        "method": m.name,
        "options": m.config(),
        "sampler": sampler_name if isinstance(sampler_name, str) else smp.name,
        "sampler_resolved": repr(smp),
        "placement": m.placement,
        "transition": ctx.transition.config() if ctx.transition is not None else None,
        "steps": int(times.numel() - 1),
        "grid": grid if isinstance(grid, str) else "explicit",
        "t_start": float(times[0]),
        "t_end": float(times[-1]),
        "n_samples": n_samples,
        "seed": seed,
        "prior": repr(prior),
        "problem": repr(problem),
        "sigma": problem.sigma,
    }
    return SolveResult(samples=samples, nfe=ctx.model.nfe, n_vjp=ctx.model.n_vjp, wall_time=wall,
                       diagnostics=ctx.diagnostics, config=config, n_jvp=ctx.model.n_jvp,
                       latents=x if isinstance(prior, DiffusionPrior) and prior.is_latent else None,
                       trajectory=run.trajectory)


def _regular_ends(prior: Any, smp: Sampler, steps: int) -> dict[str, float]:
    """Grid ends (only those that must move) where the prior's denoiser and the sampler's conversions are finite.

    Both come from :func:`genlab.samplers.grids.open_ends` (an end moves ``END_OFFSET`` inside where a conversion
    that works in the interior is singular there): the guidance reads ``x̂1`` from the prior's field at every grid
    time (a VP ε-prediction divides by β(0) = 0 at pure noise), and the sampler converts the guided prediction — an
    ``x1`` field on the prior's path — to the kinds it consumes (Heun, RK4 and stochastic Heun need the velocity at
    t = 1 on VP, where α = 0).
    """
    from torch import nn

    from genlab.models import Field
    from genlab.samplers.grids import open_ends

    fld = getattr(prior, "field", None)
    interpolant = getattr(prior, "interpolant", None)
    if fld is None or interpolant is None:
        return {}
    denoiser_start, _ = open_ends(fld, ("x1",), evaluates_end=False)
    guided = Field(nn.Identity(), interpolant, "x1")  # what GuidedField is: an x1 field on the prior's path
    t_start, t_end = open_ends(guided, smp.consumed_kinds(), evaluates_end=smp.expected_nfe(steps) != steps)
    out: dict[str, float] = {}
    if max(denoiser_start, t_start) > 0:
        out["t_start"] = max(denoiser_start, t_start)
    if t_end < 1:
        out["t_end"] = t_end
    return out


def _run_iterative(
    m: IterativeSolver,
    problem: InverseProblem,
    prior: Any,
    sampler: str | Sampler | None,
    n_samples: int,
    seed: int | None,
    generator: torch.Generator | None,
) -> SolveResult:
    missing = m.missing(problem, prior, sampler, None)
    if missing:
        raise ValueError(f"method {m.name!r} cannot run here; it needs " + "; ".join(missing))
    prob = problem.expand(n_samples)
    start = time.perf_counter()
    out = m.run(prob, prior, n_samples=n_samples, generator=generator)
    wall = time.perf_counter() - start
    config = {"method": m.name, "options": m.config(), "n_samples": n_samples, "seed": seed,
              "prior": repr(prior), "problem": repr(problem), "sigma": problem.sigma}
    return SolveResult(samples=out.samples, nfe=out.nfe, n_vjp=out.n_vjp, wall_time=wall,
                       diagnostics=out.diagnostics, config=config, latents=out.latents,
                       particles=getattr(out, "particles", None), weights=getattr(out, "weights", None),
                       ess=getattr(out, "ess", None), n_resampled=getattr(out, "n_resampled", 0))
