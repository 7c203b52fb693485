"""Pseudoinverse-guided diffusion, ΠGDM (Song, Vahdat, Mardani & Kautz, ICLR'23), for linear operators.

ΠGDM approximates ``p(x1 | x_t) ≈ N(x̂1, r_t² I)`` so that ``p(y | x_t) ≈ N(y; A x̂1, r_t² AAᵀ + σ²I)`` and
(paper eq. 7–8, Alg. 1; ``reference/inverse.md`` §1.2)::

    g = Jᵀ Aᵀ (r_t² A Aᵀ + σ² I)⁻¹ (y − A x̂1),     J = ∂x̂1/∂x_t  (one VJP through the network)

General (a, s) form of ``r_t²`` [ours]: for data ``x1 ~ N(μ, τ²I)`` the Tweedie covariance is exactly
``Cov[x1 | x_t] = τ²s²/(a²τ² + s²)·I`` (``reference/inverse.md`` §0, §5.2). The default ``r2="gaussian"`` uses it
with ``data_var = τ²``; with τ² = 1 on VP (a² + s² = 1) it is ``1 − ᾱ_t`` = ``v/(v + ᾱ)`` (the value TMPD found
stable). **It assumes unit-variance data unless ``data_var`` is set.** ``r2="paper"`` is the paper's suggestion
``v/(1 + v)`` with ``v = s²/(a² + s²)`` (= 1 − ᾱ on VP), reported unstable on CIFAR-10 by the TMPD authors.
With this ``r²`` and an exact prior, score-mode ΠGDM gives the exact conditional score for a Gaussian prior
(verified in the tests).

Updates: ``faithful=True`` (default) is the paper's ``x_{t'} = DDIM_η(x_t; x̂1, ε̂) + a_t·ĝ`` (a post-step hook, so any
sampler with one evaluation per step can replace DDIM_η) (``√ᾱ_t``) with
``ĝ = r_t²·g = Jᵀ Aᵀ (AAᵀ + (σ²/r_t²) I)⁺ (y − A x̂1)``, which is the paper's noiseless guidance
``Jᵀ(A⁺y − A⁺A x̂1)`` at σ = 0 and the update of the NVlabs RED-diff ``pgdm.py`` reproduction (whose noiseless
``grad_term`` carries no 1/r_t²). [reconstructed: the reference note writes ``+ √ᾱ_t·g`` with the 1/r_t² inside g;
that step is ~1/r_t² times larger and diverged on both the GMM and the digits benchmarks within a few steps];
``faithful=False`` is score mode: it conditions (x̂1, ε̂) with ``g`` (``x̂1 + (s²/a)·g``) and runs any transition.
Score mode is the exact conditional update for a Gaussian prior (the tests use it), but it multiplies ``g`` by
``s²/a``: with a *trained* ε-network, whose Jacobian errors grow like 1/a at low SNR, it diverged on the digits
benchmark in the first steps (a ≈ 0.01), while the paper's update (×a) is stable. The data-space solve uses
the operator's closed-form SVD when it has one, else conjugate gradient in y-space; σ = 0 gives the noiseless
(pseudo-inverse) version ``g = Jᵀ A⁺(y − A x̂1)/r_t²``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.inverse.methods.base import (
    Guidance,
    GuideOutput,
    SolveContext,
    check_choice,
    check_positive,
    condition_prediction,
    per_sample_norm,
    safe_ratio,
    solve_gram,
)
from genlab.inverse.methods.hutchinson import draw_probe
from genlab.inverse.methods.moment_matching import estimate_data_variance
from genlab.samplers.base import Prediction
from genlab.utils import append_dims

__all__ = ["PiGDM"]


class PiGDM(Guidance):
    """ΠGDM (Song et al., ICLR'23, Alg. 1) on any Gaussian-source path.

    Options (defaults):
        r2 ("gaussian"): ``"gaussian"`` (τ²s²/(a²τ² + s²)), ``"paper"`` (v/(1 + v)), ``"tweedie"`` (per sample and
            step, ``tr(Cov[x1 | x_t])/n = (s²/a)·zᵀJz/n`` with one Rademacher probe: one more VJP per step), a
            float, or a callable ``(beta, alpha) -> r²`` of the ``(B,)`` data and noise coefficients.
        data_var (1.0): τ², the per-coordinate data variance assumed by ``r2="gaussian"``, or ``"auto"`` (read off
            the prior's Tweedie covariance at the first grid time on a fixed auxiliary batch: 1 NFE + 1 VJP,
            :func:`~genlab.inverse.methods.moment_matching.estimate_data_variance`).

    Tuning record (issue 13; held-out MCGdiff GMM seeds 100–102, d = 8, d_y ∈ {1, 2, 4}, 100 steps, 500 samples,
    ``experiments/results/inverse_gmm_tuning.md``; geometric mean over cells of the median SW, lower is better):
    paper update with τ² = 1 0.476, with ``data_var="auto"`` 0.564, with ``r2="tweedie"`` 0.520; score mode with
    τ² = 1 0.431 and with ``"auto"`` 1.86. The default stays the paper update with τ² = 1: the prior-scale
    variants lost on held-out seeds (this prior's components have unit covariance, so once a mode is chosen the
    Tweedie covariance is ≈ I, not the global variance ≈ 65 that ``"auto"`` reads), and score mode, marginally
    best here, diverges with trained ε-networks (module docstring). For data far from unit scale set
    ``data_var="auto"`` (or the known variance).
        faithful (True): the paper's additive update ``+ a_t·weight·g``; ``False``: score mode (exact on a Gaussian
            prior with an exact denoiser, see the module docstring for its low-SNR caveat).
        weight (1.0): multiplier of ``g``.
        clip (None): ``(lo, hi)`` clamp of x̂1 before the residual and the transition (as DPS's ``clip``).
    """

    name: ClassVar[str] = "pigdm"
    default_sampler: ClassVar[str] = "ddim"
    default_steps: ClassVar[int] = 100
    default_eta: ClassVar[float | None] = 1.0
    spaces: ClassVar[tuple[str, ...]] = ("pixel",)
    needs_linear: ClassVar[bool] = True
    uses_network_gradient: ClassVar[bool] = True
    DEFAULTS: ClassVar[dict[str, Any]] = {"r2": "gaussian", "data_var": 1.0, "faithful": True, "weight": 1.0,
                                          "clip": None}

    def validate(self) -> None:
        o = self.options
        r2 = o["r2"]
        if isinstance(r2, str):
            check_choice("r2", r2, ("gaussian", "paper", "tweedie"))
        elif isinstance(r2, (int, float)) and not isinstance(r2, bool):
            check_positive("r2", r2)
        elif not callable(r2):
            raise TypeError(f"r2 must be 'gaussian', 'paper', 'tweedie', a float or a callable (beta, alpha) -> r², "
                            f"got {r2!r}")
        if o["data_var"] != "auto":
            check_positive("data_var", o["data_var"])
        check_positive("weight", o["weight"], allow_zero=True)
        if not isinstance(o["faithful"], bool):
            raise TypeError(f"faithful must be a bool, got {o['faithful']!r}")
        if o["clip"] is not None and (len(o["clip"]) != 2 or not o["clip"][0] < o["clip"][1]):
            raise ValueError(f"clip must be None or (lo, hi) with lo < hi, got {o['clip']!r}")

    @property
    def placement(self) -> str:
        return "hook" if self.options["faithful"] else "field"

    def setup(self, ctx: SolveContext) -> None:
        if self.options["r2"] == "gaussian" and self.options["data_var"] == "auto":
            ctx.extras["tau2"] = estimate_data_variance(ctx)  # one evaluation (fixed auxiliary batch), one VJP

    def r2(self, beta: Tensor, alpha: Tensor, ctx: SolveContext | None = None) -> Tensor:
        """``r_t²`` per sample from the ``(B,)`` data coefficient β (the papers' a) and noise coefficient α (s).

        ``data_var="auto"`` reads τ² from ``ctx.extras["tau2"]`` (set at the first evaluation of a run).
        """
        r2 = self.options["r2"]
        if r2 == "tweedie":
            if ctx is None or "r2_step" not in ctx.extras:
                raise ValueError("r2='tweedie' is estimated at each evaluation; call likelihood_score first")
            return ctx.extras["r2_step"]
        if r2 == "gaussian":
            tau2 = self.options["data_var"]
            if tau2 == "auto":
                if ctx is None or "tau2" not in ctx.extras:
                    raise ValueError("data_var='auto' needs the run's context (τ² is estimated in setup); "
                                     "pass ctx, or set data_var to a float")
                tau2 = ctx.extras["tau2"]
            return tau2 * alpha**2 / (beta**2 * tau2 + alpha**2)
        if r2 == "paper":
            v = alpha**2 / (beta**2 + alpha**2)
            return v / (1 + v)
        if callable(r2):
            return torch.as_tensor(r2(beta, alpha), dtype=beta.dtype, device=beta.device).expand_as(beta)
        return torch.full_like(beta, float(r2))

    def _x1(self, pred: Prediction) -> Tensor:
        x1 = pred("x1")
        return x1 if self.options["clip"] is None else x1.clamp(*self.options["clip"])

    def likelihood_score(self, pred: Prediction, t: float | Tensor, ctx: SolveContext) -> tuple[Tensor, Tensor]:
        """``(g, ‖y − A x̂1‖)`` with ``g = Jᵀ Aᵀ (r²AAᵀ + σ²I)⁺ (y − A x̂1)``."""
        x = pred.x_t
        with torch.enable_grad():
            x1 = self._x1(pred)
            c = ctx.coeffs(t, x1)
            if self.options["r2"] == "tweedie":  # per-sample tr(Cov[x1|x_t])/n, one Rademacher probe (one VJP)
                z = draw_probe(x, "rademacher", generator=ctx.generator)
                (jz,) = torch.autograd.grad(x1, x, grad_outputs=z, retain_graph=True)
                tr = (z * jz).detach().flatten(1).sum(1) / z[0].numel()
                ctx.extras["r2_step"] = (safe_ratio(c.alpha**2, c.beta) * tr).clamp_min(1e-3 * c.alpha**2)
            with torch.no_grad():
                r = ctx.problem.residual(x1)
                u = solve_gram(ctx.op, r, self.r2(c.beta, c.alpha, ctx), ctx.problem.sigma**2, ctx.x_shape)
                v = ctx.op.At(u)
            (g,) = torch.autograd.grad(x1, x, grad_outputs=v)
        return g, per_sample_norm(r)

    def guide(self, pred: Prediction, t: float | Tensor, ctx: SolveContext) -> GuideOutput:
        g, rnorm = self.likelihood_score(pred, t, ctx)
        g = self.options["weight"] * g
        x1 = self._x1(pred).detach()
        c = ctx.coeffs(t, x1)
        if self.options["faithful"]:
            step = append_dims(c.beta * self.r2(c.beta, c.alpha, ctx), x1.ndim) * g
            ctx.log(residual=rnorm, guidance_norm=per_sample_norm(step))
            return GuideOutput(x1=x1, correction=step)
        ctx.log(residual=rnorm, guidance_norm=per_sample_norm(g))
        x1_y, _ = condition_prediction(x1, pred("x0").detach(), g, c)
        return GuideOutput(x1=x1_y)
