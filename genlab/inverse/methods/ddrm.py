"""Denoising Diffusion Restoration Models, DDRM (Kawar, Elad, Ermon & Song, NeurIPS'22), for operators with an SVD.

DDRM works in the spectral coordinates of ``A = U diag(s) Vᵀ`` (genlab's :class:`~genlab.inverse.operators.SVD`,
whose ``V`` spans all of x-space, null space included) and in the variance-exploding picture of the path:
``x_t = a·x1 + s_t·ε`` is ``x_t/a = x1 + σ_t ε`` with ``σ_t = s_t/a``. With ``ȳ = Uᵀy/s`` and the per-coordinate
noise ratio ``nsr = σ_y/s`` (paper eq. 7–8, Appendix; ``reference/inverse.md`` §1.3), one step from σ to σ' with
``x̄_θ = Vᵀ x̂1`` (one network evaluation, no gradient) draws each coordinate as::

    s = 0 (null space):   x̄' = x̄_θ + √(1 − η²)·σ'·ε̄ + η·σ'·z                 ε̄ = Vᵀ ε̂ = (x̄ − x̄_θ)/σ
    s > 0, σ' < nsr:      x̄' = x̄_θ + √(1 − η²)·σ'·(ȳ − x̄_θ)/nsr + η·σ'·z
    s > 0, σ' ≥ nsr:      x̄' = (1 − η_b)·x̄_θ + η_b·ȳ + √(σ'² − η_b²·nsr²)·z

and the state is ``x_{t'} = a'·V x̄'`` (written in path units, ``a'σ' = s'``, so it is defined at ``a' = 0`` too).
The first state (paper's initialisation) is ``a·ȳ + √(s² − a²nsr²)·z`` on observed coordinates whose noise level
exceeds nsr and ``s·z`` elsewhere; the last step (σ' = 0) returns ``V x̄_θ`` (with η_b·ȳ mixed in on observed
coordinates when σ_y = 0). Defaults are the paper's: η = 0.85, η_b = 1, 20 steps. The sampler is ``"ddim"`` with
``eta`` = DDRM's η (DDRM's own step replaces DDIM's; one evaluation per step, NFE = steps). Differences from
deepinv's ``DDRM``: deepinv draws ``z/√2`` (a [0, 1]-image convention), counts coordinates with ``s ≤ σ_y`` as
missing, and takes σ's on a fixed ``linspace(1, 0)``; here ``s > 0`` is observed (the paper) and the σ's come
from the sampler's grid on the prior's own path.

Exactness: where every singular value is 0 (no measurement) DDRM is DDIM(η) on the prior and samples it exactly up
to discretisation; with ``η_b = 1`` the observed coordinates keep the forward marginal ``x̄_t | x̄1 ~ N(x̄1, σ_t²)``
(the paper's Proposition behind "a DDPM denoiser is an optimal DDRM denoiser"); both are tested. It is not an exact
posterior sampler for a general prior (its samples do not use the prior's correlation between observed and
missing coordinates until σ drops below nsr).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.inverse.methods.base import Guidance, SolveContext, check_positive, per_sample_norm
from genlab.inverse.problem import InverseProblem
from genlab.samplers.base import Prediction, Sampler
from genlab.samplers.steps import DDIMStep
from genlab.utils import randn_like_per_sample

__all__ = ["DDRM"]


class DDRM(Guidance):
    """DDRM (Kawar et al., NeurIPS'22, eq. 7–8) on any Gaussian-source path; needs ``op.has_svd``.

    Options (defaults):
        eta_b (1.0): η_b, the weight of the measurement on observed coordinates above their noise ratio.
        rcond (1e-10): singular values ``≤ rcond·max(s)`` count as zero (missing coordinates).

    DDRM's η is the ``eta`` of the ``"ddim"`` sampler (default 0.85, the paper's).

    Tuning record (issue 13; held-out MCGdiff GMM seeds 100–102, d = 8, d_y ∈ {1, 2, 4}, 100 steps, 500 samples,
    ``experiments/results/inverse_gmm_tuning.md``; geometric mean over cells of the median SW): η = 0.85 1.53,
    η = 0.5 1.75, η = 0 3.65 — the paper's η = 0.85 stays the default.
    """

    name: ClassVar[str] = "ddrm"
    default_sampler: ClassVar[str] = "ddim"
    default_steps: ClassVar[int] = 20
    default_eta: ClassVar[float | None] = 0.85
    spaces: ClassVar[tuple[str, ...]] = ("pixel",)
    needs_linear: ClassVar[bool] = True
    uses_network_gradient: ClassVar[bool] = False
    DEFAULTS: ClassVar[dict[str, Any]] = {"eta_b": 1.0, "rcond": 1e-10}

    def validate(self) -> None:
        o = self.options
        eta_b = o["eta_b"]
        if isinstance(eta_b, bool) or not isinstance(eta_b, (int, float)) or not 0.0 <= float(eta_b) <= 1.0:
            raise ValueError(f"eta_b must be a float in [0, 1] (the paper's η_b, default 1), got {eta_b!r}")
        check_positive("rcond", o["rcond"], allow_zero=True)

    def sampler_missing(self, sampler: Sampler, prior: Any) -> str | None:
        why = super().sampler_missing(sampler, prior)
        if why is None and (sampler.name != "ddim" or not isinstance(sampler.step_map(), DDIMStep)):
            why = (f"'ddrm' replaces the DDIM step by its spectral update (the sampler's eta is DDRM's η), so it "
                   f"runs with the 'ddim' sampler; got {sampler.name!r}")
        return why

    def missing(self, problem: InverseProblem, prior: Any, sampler: Any, eta: float | None) -> list[str]:
        out = super().missing(problem, prior, sampler, eta)
        if problem.is_linear and not problem.op.has_svd:
            out.append(f"an operator with a closed-form SVD ({problem.op.name} has none; wrap a small one as "
                       "DenseOperator(op.dense(x_shape)))")
        return out

    # ------------------------------------------------------------------ spectral set-up
    def setup(self, ctx: SolveContext) -> None:
        svd = ctx.op.svd(ctx.x_shape)
        y = ctx.y
        sv = svd.s.to(y)
        observed = sv > self.options["rcond"] * sv.max().clamp_min(torch.finfo(y.dtype).tiny)
        safe = torch.where(observed, sv, torch.ones_like(sv))
        uty = svd.Ut(y)
        ybar = torch.where(observed[None], uty / safe[None], torch.zeros_like(uty))
        nsr = torch.where(observed, ctx.problem.sigma / safe, torch.zeros_like(sv))
        ctx.extras["ddrm"] = {"svd": svd, "observed": observed, "ybar": ybar, "nsr": nsr}

    def _levels(self, ctx: SolveContext, t: float | Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        c = ctx.coeffs(t, x)
        return c.beta.reshape(-1, 1), c.alpha.reshape(-1, 1)

    def init_state(self, ctx: SolveContext) -> Tensor:
        e = ctx.extras["ddrm"]
        svd, observed, ybar, nsr = e["svd"], e["observed"], e["ybar"], e["nsr"]
        y = ctx.y
        z = randn_like_per_sample(torch.empty((ctx.n_samples, *ctx.x_shape), device=y.device, dtype=y.dtype),
                                  generator=ctx.generator)
        zbar = svd.Vt(z)
        a, s = self._levels(ctx, float(ctx.grid[0]), zbar)
        above = observed[None] & (s >= a * nsr[None])
        spec = torch.where(above, a * ybar + (s**2 - (a * nsr[None]) ** 2).clamp_min(0).sqrt() * zbar, s * zbar)
        return svd.V(spec)

    # ------------------------------------------------------------------ the step
    def step(self, x_t: Tensor, t: float | Tensor, t_next: float | Tensor, pred: Prediction,
             ctx: SolveContext) -> Tensor:
        e = ctx.extras["ddrm"]
        svd, observed, ybar, nsr = e["svd"], e["observed"], e["ybar"], e["nsr"][None]
        eta = ctx.transition.eta  # type: ignore[union-attr]
        eta_b = float(self.options["eta_b"])
        c = (1.0 - eta**2) ** 0.5
        with torch.no_grad():
            x1, eps = pred("x1").detach(), pred("x0").detach()
            xb, eb = svd.Vt(x1), svd.Vt(eps)
            a, s = self._levels(ctx, t_next, xb)  # path units: a'·x̄' with a'·σ' = s'
            zb = svd.Vt(randn_like_per_sample(x1, generator=ctx.generator)) if not ctx.is_last(t_next) else \
                torch.zeros_like(xb)
            obs = observed[None].expand_as(xb)
            below = obs & (s < a * nsr)
            above = obs & ~below
            safe_nsr = torch.where(nsr > 0, nsr, torch.ones_like(nsr))
            missing = a * xb + c * s * eb + eta * s * zb
            low = a * xb + c * s * (ybar - xb) / safe_nsr + eta * s * zb
            high = a * ((1 - eta_b) * xb + eta_b * ybar) + (s**2 - (eta_b * a * nsr) ** 2).clamp_min(0).sqrt() * zb
            spec = torch.where(above, high, torch.where(below, low, missing))
            out = svd.V(spec)
        ctx.log(residual=ctx.problem.residual_norm(x1), state_norm=per_sample_norm(out))
        return out
