"""Tweedie moment matching (TMPD; Boys, Girolami, Pidstrigach, Reich, Mosca & Akyildiz, arXiv 2310.06721, 2023;
also Rozet et al., NeurIPS'24 "Learning diffusion priors from observations by expectation maximization").

Moment matching approximates ``p(x1 | x_t)`` by the Gaussian with the exact first two Tweedie moments
(``reference/inverse.md`` §0)::

    E[x1 | x_t] = x̂1,        Cov[x1 | x_t] = (s²/a)·J,        J = ∂x̂1/∂x_t   (symmetric for an exact denoiser)

so that ``p(y | x_t) ≈ N(y; A x̂1, (s²/a)·A J Aᵀ + σ²I)`` and (Boys et al., eq. 9–10; deepinv's
``MomentMatchingDataFidelity``)::

    g = Jᵀ Aᵀ ((s²/a)·A J Aᵀ + σ² I)⁻¹ (y − A x̂1)

The y-space system is solved by conjugate gradient whose matrix-vector product ``u ↦ σ²u + (s²/a)·A J Aᵀu`` costs
one VJP through the network (``J Aᵀu = Jᵀ Aᵀu`` by the symmetry of J); the final ``Jᵀ Aᵀ w`` is one more VJP.
TMPD uses ``g`` in score mode (``x̂1|y = x̂1 + (s²/a)·g``, ``ε̂|y = ε̂ − s·g``) and runs the sampler on the
conditioned prediction (placement ``"field"``), so any registered sampler carries it.

Exactness: for a Gaussian prior (any mean and covariance) with an exact denoiser, ``p(x1 | x_t)`` *is* the Gaussian
above, so ``g`` is the exact likelihood score ``∇ log p_t(y | x_t)`` and the sampler draws the exact posterior up
to its discretisation (tested in ``tests/inverse/test_mm.py``), whatever the data scale — unlike ΠGDM with an
assumed ``r²``. With ``cg_iters ≥ d_y`` the CG solve is exact in exact arithmetic.

The module also holds :func:`tweedie_data_variance`, the data variance a method can read off the prior's own
Tweedie covariance (used by ΠGDM's and DiffPIR's ``data_var="auto"`` defaults).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.inverse.methods.base import (
    Guidance,
    GuideOutput,
    SolveContext,
    check_positive,
    condition_prediction,
    per_sample_norm,
    safe_ratio,
)
from genlab.inverse.operators import conjugate_gradient
from genlab.samplers.base import Prediction, Sampler
from genlab.utils import append_dims

__all__ = ["MomentMatching", "estimate_data_variance", "tweedie_data_variance"]

#: Seed of the Rademacher probes of :func:`tweedie_data_variance` (fixed: the estimate must not consume the run's
#: per-sample noise stream, so that a method's samples do not depend on whether it estimated τ²).
PROBE_SEED = 20231010


def tweedie_data_variance(pred: Prediction, t: float | Tensor, ctx: SolveContext) -> float:
    """Per-coordinate data variance τ² read off the prior's own Tweedie covariance at one evaluation.

    ``Cov[x1 | x_t] = (s²/a)·J`` (Tweedie, second order). Its mean diagonal ``c = tr(Cov)/n`` is estimated with
    one Rademacher probe per sample (``zᵀ J z``, one VJP through the network) and averaged over the batch; τ² is
    the variance of the isotropic Gaussian ``N(μ, τ²I)`` with that Tweedie variance at this ``(a, s)``:
    ``c = τ²s²/(a²τ² + s²)`` ⇔ ``τ² = c·s²/(s² − a²c)`` (exact for such a Gaussian, ≈ ``c`` at low SNR, where the
    Tweedie covariance tends to the data covariance). [ours: the ΠGDM paper assumes τ² = 1.]

    Args:
        pred: A differentiable evaluation (``pred.x_t`` requires grad) on the batch of states.
        t: Its time.
        ctx: The run's context.

    Returns:
        τ² > 0 (falls back to ``c``, then to 1.0, where the estimate is not positive and finite).
    """
    x = pred.x_t
    if not x.requires_grad:
        raise ValueError("tweedie_data_variance needs a differentiable evaluation (pred.x_t.requires_grad)")
    gen = torch.Generator(device=x.device).manual_seed(PROBE_SEED)
    z = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
    with torch.enable_grad():
        x1 = pred("x1")
        (jz,) = torch.autograd.grad(x1, x, grad_outputs=z, retain_graph=True)
    c_t = ctx.coeffs(t, x)
    beta, alpha = float(c_t.beta.reshape(-1)[0]), float(c_t.alpha.reshape(-1)[0])
    n = x[0].numel()
    if beta <= 0:
        return 1.0
    c = (alpha**2 / beta) * float((z * jz).detach().flatten(1).sum(1).mean()) / n
    if not (c > 0 and torch.isfinite(torch.tensor(c))):
        return 1.0
    den = alpha**2 - beta**2 * c
    tau2 = c * alpha**2 / den if den > 0 else c
    return float(tau2) if tau2 > 0 else c


def estimate_data_variance(ctx: SolveContext, *, n_states: int = 64) -> float:
    """τ² of :func:`tweedie_data_variance` on a fixed auxiliary batch (one counted evaluation and one VJP).

    The states are ``s·z`` with ``z`` from a fixed generator (not the run's noise stream, and not the run's batch,
    so samples stay independent of the batch size and of each other) at the first grid time with signal
    (``a > 0``): at low SNR ``x_t`` barely depends on the data and ``Cov[x1 | x_t]`` is close to the data
    covariance, whose mean diagonal is averaged over ``n_states`` states and probes.

    Args:
        ctx: The run's context (``ctx.grid``, ``ctx.model``).
        n_states: Auxiliary states (and probes).

    Returns:
        τ² > 0.
    """
    grid = ctx.grid
    t = float(grid[0])
    y = ctx.y
    probe = torch.zeros((1, *ctx.state_shape), device=y.device, dtype=y.dtype)
    for cand in grid[:-1]:
        if float(ctx.coeffs(float(cand), probe).beta.reshape(-1)[0]) > 0:
            t = float(cand)
            break
    gen = torch.Generator(device=y.device).manual_seed(PROBE_SEED + 1)
    z = torch.randn((n_states, *ctx.state_shape), generator=gen, device=y.device, dtype=y.dtype)
    alpha = ctx.coeffs(t, z).alpha.reshape(-1, *([1] * (z.ndim - 1)))
    pred = ctx.model.evaluate((alpha * z).requires_grad_(True), t, grad=True)
    return tweedie_data_variance(pred, t, ctx)


class MomentMatching(Guidance):
    """Tweedie moment matching (TMPD, Boys et al. 2023, eq. 9–10) in score mode, on any Gaussian-source path.

    Options (defaults):
        cg_iters (8): conjugate-gradient iterations of the y-space solve (each one VJP); exact once ≥ d_y
            (deepinv's default is 3).
        cg_tol (1e-8): relative CG tolerance (stops early, saving VJPs, once met).
        weight (1.0): multiplier of ``g``.

    Tuning record (issue 13; ``experiments/bench_inverse_gmm.py --tune``, held-out MCGdiff GMM seeds 100–102, d = 8,
    d_y ∈ {1, 2, 4}, 100 steps, 500 samples): the paper form has no free scale; with ``weight = 1`` and an exact
    solve the geometric mean over cells of the median SW is 0.464 (ΠGDM's default 0.476; best on d_y = 4: 0.071).
    """

    name: ClassVar[str] = "moment_matching"
    default_sampler: ClassVar[str] = "ddpm"
    default_steps: ClassVar[int] = 100
    default_eta: ClassVar[float | None] = None
    spaces: ClassVar[tuple[str, ...]] = ("pixel",)
    needs_linear: ClassVar[bool] = True
    uses_network_gradient: ClassVar[bool] = True
    DEFAULTS: ClassVar[dict[str, Any]] = {"cg_iters": 8, "cg_tol": 1e-8, "weight": 1.0}

    def validate(self) -> None:
        o = self.options
        if isinstance(o["cg_iters"], bool) or not isinstance(o["cg_iters"], int) or o["cg_iters"] < 1:
            raise ValueError(f"cg_iters must be an int >= 1 (conjugate-gradient iterations), got {o['cg_iters']!r}")
        check_positive("cg_tol", o["cg_tol"], allow_zero=True)
        check_positive("weight", o["weight"], allow_zero=True)

    @property
    def placement(self) -> str:
        return "field"

    def sampler_missing(self, sampler: Sampler, prior: Any) -> str | None:
        why = super().sampler_missing(sampler, prior)
        if why is None and (not sampler.reports_steps or sampler.expected_nfe(4) != 4):
            why = (f"'moment_matching' runs with samplers that make one evaluation per step ({sampler.name!r} makes "
                   f"{sampler.expected_nfe(4)} for 4 steps and evaluates at the grid's end, where s = 0 and the "
                   "x1 -> velocity/ε conversion of a VP path is singular; each evaluation also costs CG VJPs)")
        return why

    def likelihood_score(self, pred: Prediction, t: float | Tensor, ctx: SolveContext) -> tuple[Tensor, Tensor, int]:
        """``(g, ‖y − A x̂1‖, CG iterations)`` with ``g = Jᵀ Aᵀ ((s²/a)·A J Aᵀ + σ²I)⁻¹ (y − A x̂1)``."""
        x = pred.x_t
        op, sigma2 = ctx.op, ctx.problem.sigma**2
        with torch.enable_grad():
            x1 = pred("x1")
            c = ctx.coeffs(t, x1)
            k = append_dims(safe_ratio(c.alpha**2, c.beta), ctx.y.ndim)

            def jvp_sym(v: Tensor) -> Tensor:
                (out,) = torch.autograd.grad(x1, x, grad_outputs=v, retain_graph=True)
                return out

            with torch.no_grad():
                r = ctx.problem.residual(x1)
            res = conjugate_gradient(lambda u: sigma2 * u + k * op.A(jvp_sym(op.At(u))), r,
                                     tol=self.options["cg_tol"], max_iter=self.options["cg_iters"])
            (g,) = torch.autograd.grad(x1, x, grad_outputs=op.At(res.x.detach()))
        return g, per_sample_norm(r), res.n_iter

    def guide(self, pred: Prediction, t: float | Tensor, ctx: SolveContext) -> GuideOutput:
        g, rnorm, n_iter = self.likelihood_score(pred, t, ctx)
        g = self.options["weight"] * g
        x1 = pred("x1").detach()
        ctx.log(residual=rnorm, guidance_norm=per_sample_norm(g), cg_iters=n_iter)
        # x̂1|y = x̂1 + (s²/a)·g (condition_prediction's first output; ε̂ is not needed, so t = 1 is allowed)
        x1_y, _ = condition_prediction(x1, torch.zeros_like(x1), g, ctx.coeffs(t, x1))
        return GuideOutput(x1=x1_y)
