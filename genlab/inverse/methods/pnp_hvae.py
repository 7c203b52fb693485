"""PnP-HVAE (Prost, Houdard, Almansa, Papadakis, "Inverse problem regularization with hierarchical variational
autoencoders", ICCV 2023; its alternating algorithm, written from ``reference/inverse.md`` §1.8, which follows the
released code ``pnphvae.py`` / ``Decoder.forward_reg``; equation numbers of the paper were not checked here).

An iterative solver, not a diffusion sampler (``reference/inverse.md`` §1.8). With the decoder replaced by
``N(μ_θ(z), γ² I)`` and a per-level tempered prior ``p_T(z_l | z_<l) = N(pm_l, (T_l pσ_l)²)``, it alternates on the
joint objective

``J(x, z) = ‖Ax − y‖²/(2σ²) + β‖x − μ_θ(z)‖²/(2γ²) + Σ_l [‖z_l − pm_l‖²/(2 T_l² pσ_l²) + Σ log(T_l pσ_l)]``

* **x-step**: ``x = argmin_x ‖Ax − y‖²/(2σ²) + β‖x − μ‖²/(2γ²)``, i.e.
  ``(AᵀA + ρ I) x = Aᵀy + ρ μ`` with ``ρ = βσ²/γ²``, solved by the operator's ``solve_reg`` (closed form through the
  SVD of masks, circular blurs, box super-resolution and dense/compressed-sensing matrices; conjugate gradient
  otherwise, e.g. :class:`~genlab.inverse.operators.ConvBlur`). ``mode="sample"`` draws from that Gaussian instead
  by perturbation–optimisation (Papandreou & Yuille 2010): the same solve with ``y + σξ'`` and ``μ + (γ/√β)ξ``.
* **latent step** (code ``Decoder.forward_reg`` with ``a = β``, ``b = 1 − βT²``): one encoder pass on ``x`` and one top-down decoder
  pass in which each group is the minimiser of ``−β log q(z_l | x, z_<l) − (1/T_l² − β) log p(z_l | z_<l)``
  (precision form: ``z_l = (a·qm/qS + b·pm/pS)/(a/qS + b/pS)``, ``a = β``, ``b = 1 − βT_l²``, ``pS = (T_l pσ)²``);
  ``mode="sample"`` draws ``z_l ~ N(m, T_l² S)`` of that Gaussian product. With an exact encoder this is the
  coordinate minimiser of ``J`` in ``z`` (one level, or T = 1), so ``J`` decreases monotonically.

The loop starts from ``x_0 = y`` when ``y`` has the shape of ``x`` (inpainting, deblurring; paper) and ``A⁺y``
otherwise (super-resolution, compressed sensing; the paper uses a bicubic upsampling), stops per sample when
``r_k = mean((x_k − x_{k−1})²)`` has not improved by the relative ``tol`` for ``patience`` iterations, and returns
the decoder mean ``μ`` (the paper's output; ``output="x"`` returns the x-iterate).

Defaults: β = 1 (β_min = β_max = 1 in every released config), ``maxiter = 50``, ``patience = 10``, ``tol = 1e-3``
(the deblurring / super-resolution configs), the temperature schedule ``T(l) = t_top + (t_bottom − t_top)·l/L`` with
``(t_top, t_bottom) = (0.8, 0.6)`` (patch-VDVAE natural-image config), ``γ`` from the prior
(:class:`~genlab.inverse.HVAEPrior` ``decoder_std``). Reconstructed / deviating, said plainly: the temperature
and ``γ`` the paper tunes per experiment are not tuned to genlab's small HVAEs by default (the digits benchmark
picks T on training images); the exact stopping rule of the released code (``Lk`` logging, ``β`` increments) is
simplified to the rule above; ``σ = 0`` is replaced by ``sigma_min`` in ``ρ``.

NFE-equivalent: one encoder pass and one decoder pass per iteration count as 2 network evaluations (measured by a
counting wrapper around ``bottom_up``/``top_down``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.inverse.methods.base import IterativeOutput, IterativeSolver, check_choice, check_positive
from genlab.inverse.priors import HVAEPrior
from genlab.inverse.problem import InverseProblem
from genlab.models.hvae import LevelStats, TopDown, level_temperatures
from genlab.samplers.base import Sampler
from genlab.utils import NoiseStream, RandomSource, append_dims, randn_per_sample

__all__ = ["LatentStep", "PnPHVAE", "latent_step"]


class _Counted:
    """Counts encoder (``bottom_up``) and decoder (``top_down``) passes of an HVAE."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.encoder_passes = 0
        self.decoder_passes = 0

    def bottom_up(self, x: Tensor) -> Any:
        self.encoder_passes += 1
        return self.model.bottom_up(x)

    def top_down(self, acts: Any, select: Any) -> TopDown:
        self.decoder_passes += 1
        return self.model.top_down(acts, select)


class LatentStep:
    """Result of :func:`latent_step`.

    Attributes:
        zs: Chosen latent groups (top first).
        mean: Decoder mean ``μ_θ(z)``.
        prior_energy: ``−log p_T(z)`` up to the constant ``(dims/2)·log 2π``, per sample ``(B,)``.
    """

    def __init__(self, zs: list[Tensor], mean: Tensor, prior_energy: Tensor) -> None:
        self.zs = zs
        self.mean = mean
        self.prior_energy = prior_energy


def latent_step(
    model: Any,
    x: Tensor,
    *,
    beta: float,
    temperatures: Sequence[float],
    mode: str = "map",
    generator: RandomSource = None,
) -> LatentStep:
    """PnP-HVAE's regularised encoder–decoder pass (``DecBlock.sample_reg``; ``reference/inverse.md`` §1.8).

    Args:
        model: HVAE (protocol of :mod:`genlab.models.hvae`).
        x: Current image estimate.
        beta: Weight ``β`` of the encoder term.
        temperatures: ``T_l`` per level (top first), each with ``β T_l² ≤ 1``.
        mode: ``"map"`` (Gaussian-product mode) or ``"sample"`` (draw from it with std ``T_l √S``).
        generator: Noise source of ``"sample"``.

    Returns:
        :class:`LatentStep`.
    """
    acts = model.bottom_up(x)
    energy: list[Tensor] = []

    def select(level: int, st: LevelStats) -> Tensor:
        if st.q_mean is None or st.q_logstd is None:
            raise ValueError("the HVAE's top-down pass gave no posterior statistics; pass encoder activations")
        t = float(temperatures[level])
        q_prec = torch.exp(-2.0 * st.q_logstd)
        p_std = t * torch.exp(st.p_logstd)
        p_prec = p_std**-2
        a, b = beta, 1.0 - beta * t * t
        prec = a * q_prec + b * p_prec
        z = (a * q_prec * st.q_mean + b * p_prec * st.p_mean) / prec
        if mode == "sample":
            eps = randn_per_sample(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = z + t * prec.rsqrt() * eps
        energy.append((0.5 * ((z - st.p_mean) / p_std) ** 2 + torch.log(p_std)).flatten(1).sum(1))
        return z

    td = model.top_down(acts, select)
    return LatentStep(td.zs, td.x_mean, torch.stack(energy, 0).sum(0))


class PnPHVAE(IterativeSolver):
    """PnP-HVAE as a :func:`~genlab.inverse.solve` method (see the module docstring for the algorithm).

    Options (``DEFAULTS``):
        mode: ``"map"`` (alternating minimisation) or ``"sample"`` (stochastic variant: perturbed x-step and
            sampled latents).
        temperature: One float, ``(t_top, t_bottom)`` (linear schedule over the levels) or one value per level;
            each ``T_l`` must satisfy ``0 < T_l ≤ 1/√β``.
        beta: ``β > 0`` (paper: 1).
        decoder_std: ``γ`` (``None``: the prior's ``decoder_std``).
        maxiter: Iteration cap.
        patience: Iterations without relative improvement of ``r_k`` before a sample stops.
        tol: Relative improvement threshold.
        init: ``"auto"`` (``y`` if it has the shape of ``x``, else ``A⁺y``), ``"y"``, ``"pinv"`` or ``"adjoint"``.
        output: ``"mean"`` (decoder mean, paper) or ``"x"`` (last x-iterate).
        sigma_min: Noise level used in ``ρ = βσ²/γ²`` when the problem has ``σ < sigma_min``.
        cg_tol: Relative tolerance of conjugate gradient in the x-step (operators without a closed form).
        cg_max_iter: Its iteration cap (paper: 1000).
    """

    name: ClassVar[str] = "pnp_hvae"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "mode": "map",
        "temperature": (0.8, 0.6),
        "beta": 1.0,
        "decoder_std": None,
        "maxiter": 50,
        "patience": 10,
        "tol": 1e-3,
        "init": "auto",
        "output": "mean",
        "sigma_min": 1e-3,
        "cg_tol": 1e-6,
        "cg_max_iter": 1000,
    }
    prior_types: ClassVar[tuple[type, ...]] = (HVAEPrior,)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        check_choice("mode", o["mode"], ("map", "sample"))
        check_choice("init", o["init"], ("auto", "y", "pinv", "adjoint"))
        check_choice("output", o["output"], ("mean", "x"))
        check_positive("beta", o["beta"])
        check_positive("tol", o["tol"], allow_zero=True)
        check_positive("sigma_min", o["sigma_min"])
        check_positive("cg_tol", o["cg_tol"])
        if o["decoder_std"] is not None:
            check_positive("decoder_std", o["decoder_std"])
        for key in ("maxiter", "patience", "cg_max_iter"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be a positive int; got {v!r}")
        t = o["temperature"]
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            level_temperatures(t, 1)  # values are checked now, the length against the HVAE's levels at run time
        elif isinstance(t, Sequence) and not isinstance(t, str) and len(t) > 0:
            level_temperatures(list(t), len(t))
        else:
            raise TypeError(f"temperature must be a float, a pair (t_top, t_bottom) or one value per level; got {t!r}")

    def missing(self, problem: InverseProblem, prior: Any, sampler: str | Sampler | None,
                eta: float | None) -> list[str]:
        """Needs an :class:`~genlab.inverse.HVAEPrior`, a linear operator and ``x`` of the HVAE's data shape."""
        out = super().missing(problem, prior, sampler, eta)
        if out and not isinstance(prior, HVAEPrior):
            out[0] = (f"a hierarchical-VAE prior (genlab.inverse.HVAEPrior(genlab.models.HVAE ...)); got "
                      f"{type(prior).__name__} — diffusion priors run with the guidance methods (dps, pigdm, dds, "
                      "...)")
        if not problem.is_linear:
            out.append(f"a linear operator (the x-step solves (AᵀA + ρI)x = Aᵀy + ρμ); got {problem.op.name}")
        if isinstance(prior, HVAEPrior) and tuple(problem.x_shape) != prior.event_shape:
            out.append(f"an operator on x of the HVAE's shape {prior.event_shape}; the problem's x has shape "
                       f"{tuple(problem.x_shape)}")
        return out

    def temperatures(self, n_levels: int) -> list[float]:
        """Per-level temperatures for an HVAE with ``n_levels`` groups (validated against ``β``)."""
        temps = level_temperatures(self.options["temperature"], n_levels)
        beta = float(self.options["beta"])
        bad = [t for t in temps if beta * t * t > 1.0 + 1e-12]
        if bad:
            raise ValueError(f"temperature: every level needs β·T² ≤ 1 (the prior weight 1/T² − β must stay ≥ 0); "
                             f"with beta={beta:g} the temperatures {bad} are too large (max {1 / math.sqrt(beta):.4g})")
        return temps

    def run(self, problem: InverseProblem, prior: Any, *, n_samples: int,
            generator: torch.Generator | None) -> IterativeOutput:
        """Run the alternating scheme on ``problem`` (``y`` already expanded to ``n_samples``)."""
        o = self.options
        temps = self.temperatures(prior.n_levels)
        beta = float(o["beta"])
        gamma = float(o["decoder_std"] if o["decoder_std"] is not None else prior.decoder_std)
        sigma = max(float(problem.sigma), float(o["sigma_min"]))
        rho = beta * sigma**2 / gamma**2
        op, y = problem.op, problem.y
        sample = o["mode"] == "sample"
        streams = NoiseStream(n_samples, generator) if (sample and generator is not None) else None
        model = _Counted(prior.model)
        x_shape = tuple(problem.x_shape)

        if o["init"] == "y" or (o["init"] == "auto" and tuple(y.shape[1:]) == x_shape):
            if tuple(y.shape[1:]) != x_shape:
                raise ValueError(f"init='y' needs y of the shape of x {x_shape}; got {tuple(y.shape[1:])}")
            x = y.clone()
        elif o["init"] == "adjoint":
            x = op.At(y)
        else:
            x = op.pinv(y)

        def lat(x_: Tensor) -> LatentStep:
            with torch.no_grad():
                return latent_step(model, x_, beta=beta, temperatures=temps, mode=o["mode"], generator=streams)

        def objective(x_: Tensor, st: LatentStep) -> Tensor:
            data = ((op.A(x_) - y) ** 2).flatten(1).sum(1) / (2 * sigma**2)
            return data + beta * ((x_ - st.mean) ** 2).flatten(1).sum(1) / (2 * gamma**2) + st.prior_energy

        st = lat(x)
        aty = op.At(y)
        n = x.shape[0]
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        best = torch.full((n,), float("inf"), dtype=torch.float64, device=x.device)
        wait = torch.zeros(n, dtype=torch.long, device=x.device)
        iters = torch.zeros(n, dtype=torch.long, device=x.device)
        out_x, out_mean, out_zs = x.clone(), st.mean.clone(), [z.clone() for z in st.zs]
        diag: dict[str, list[float]] = {"residual": [], "objective": [], "data_residual": [], "active": []}
        for _ in range(int(o["maxiter"])):
            with torch.no_grad():
                mu = st.mean
                if sample:
                    y_p = y + sigma * randn_per_sample(y.shape, generator=streams, device=y.device, dtype=y.dtype)
                    mu_p = mu + (gamma / math.sqrt(beta)) * randn_per_sample(mu.shape, generator=streams,
                                                                            device=mu.device, dtype=mu.dtype)
                    rhs = op.At(y_p) + rho * mu_p
                else:
                    rhs = aty + rho * mu
                x_new = op.solve_reg(rhs, rho, x0=mu, tol=float(o["cg_tol"]), max_iter=int(o["cg_max_iter"]))
            st = lat(x_new)
            r = ((x_new - x) ** 2).flatten(1).mean(1).double()
            x = x_new
            keep = append_dims(active, x.ndim)
            out_x = torch.where(keep, x, out_x)
            out_mean = torch.where(keep, st.mean, out_mean)
            out_zs = [torch.where(append_dims(active, z.ndim), z, oz) for z, oz in zip(st.zs, out_zs)]
            iters = iters + active.long()
            with torch.no_grad():
                diag["objective"].append(float(objective(x, st).mean()))
                diag["data_residual"].append(float(problem.residual_norm(x).mean()))
            diag["residual"].append(float(r.mean()))
            diag["active"].append(float(active.sum()))
            improved = r < best * (1.0 - float(o["tol"]))
            best = torch.where(improved, r, best)
            wait = torch.where(improved, torch.zeros_like(wait), wait + 1)
            active = active & (wait < int(o["patience"])) & (r > 0)
            if not bool(active.any()):
                break
        diag["iterations"] = [float(v) for v in iters.tolist()]
        diag["temperatures"] = [float(t) for t in temps]
        diag["decoder_std"] = [gamma]
        diag["encoder_passes"] = [float(model.encoder_passes)]
        diag["decoder_passes"] = [float(model.decoder_passes)]
        samples = out_mean if o["output"] == "mean" else out_x
        return IterativeOutput(samples=samples, nfe=model.encoder_passes + model.decoder_passes, n_vjp=0,
                               diagnostics=diag, latents=out_zs)
