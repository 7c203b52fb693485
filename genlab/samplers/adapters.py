"""Adapters to the diffusers and k-diffusion ecosystems (benchmark peers and pretrained models).

Three bridges, each owning one convention mapping (``DESIGN.md``: "other conventions are mapped at the boundary"):

* :class:`DiffusersSampler` runs any VP-like diffusers scheduler (``DDIMScheduler``,
  ``DPMSolverMultistepScheduler``, ``EulerDiscreteScheduler``, ...) on a genlab :class:`~genlab.models.Field`.
  Registered as the ``"diffusers:<SchedulerClass>"`` prefix, e.g. ``sampler="diffusers:UniPCMultistepScheduler"``.
* :class:`KDiffusionSampler` runs a k-diffusion ``sample_*`` function (Karras et al. NeurIPS'22 denoiser
  convention) on a genlab Field. Registered as ``"k-diffusion:<name>"`` (``"k-diffusion:dpmpp_2m"``).
* :func:`load_diffusers_field` wraps a ``diffusers.UNet2DModel`` saved with ``save_pretrained`` in a local folder,
  plus its scheduler config, as a genlab Field on the matching discrete VP path
  (:class:`~genlab.interpolants.discrete.DiscreteVPSchedule`).

Conventions. genlab writes a Gaussian-source path as ``x_t = α(t)·ε + β(t)·x1`` (noise coefficient α, signal β,
data at t = 1). diffusers writes ``x_n = √ᾱ_n·x1 + √(1 − ᾱ_n)·ε`` for an integer training timestep n (VP state)
or, for the σ-space schedulers (Euler, Heun, LMS, KDPM2), ``x = x1 + σ·ε`` with ``σ = √((1−ᾱ)/ᾱ)`` (VE state,
whose ``scale_model_input`` divides by √(σ² + 1) to give the VP state back). k-diffusion uses the VE state and
σ. Two states describe the same point of the probability-flow ODE when their noise-to-signal ratios agree, i.e.
when their log-SNRs λ = log(β/α) = ½·log(ᾱ/(1 − ᾱ)) agree; then ``x_genlab = k(t)·x_vp`` with
``k(t) = √(α(t)² + β(t)²)`` (1 on every VP path) and ``x_genlab = β(t)·x_ve``. The ε- and data-predictions are
the same in every parametrisation (they are posterior means of ε and x1), so the conversions are exact.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.interpolants.interpolant import Interpolant
from genlab.models.field import Field
from genlab.samplers.base import CountingField, Prediction, Sampler, StepInfo
from genlab.samplers.registry import register_prefix
from genlab.utils import NoiseStream, append_dims

__all__ = [
    "DIFFUSERS_PREDICTION_KINDS",
    "DiffusersSampler",
    "DiffusersUNetNet",
    "KDiffusionSampler",
    "load_diffusers_field",
    "time_at_log_snr",
]

#: diffusers ``prediction_type`` → the genlab kind a model of that type outputs. ``v_prediction`` is no genlab kind
#: (``None``): it is mapped here, at the boundary, as v = √ᾱ·ε − √(1 − ᾱ)·x1 from the ``"noise"`` and ``"x1"``
#: predictions (Salimans & Ho ICLR'22 §4).
DIFFUSERS_PREDICTION_KINDS: dict[str, str | None] = {"epsilon": "noise", "sample": "x1", "v_prediction": None}

_F64 = torch.float64
#: Relative slack on the log-SNR range under which a level is snapped to the path's end (float32 tables).
_RANGE_SLACK = 1e-5


# ---------------------------------------------------------------------------------------------------------- helpers
def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as err:  # pragma: no cover - diffusers is a core dependency
        raise ImportError("the diffusers adapters need diffusers: pip install diffusers") from err
    return diffusers


def time_at_log_snr(
    interpolant: Interpolant,
    lam: Tensor | float,
    *,
    out_of_range: str = "raise",
) -> tuple[Tensor, Tensor]:
    """The genlab time(s) at which the path's half log-SNR λ(t) = log(β/α) equals ``lam``.

    The inverse is :meth:`Interpolant.time_at_lam` (the schedule's closed-form ``snr_inverse`` when it reproduces λ
    to 1e-9, else bisection of λ(t) on [0, 1]; λ increases with t on every Gaussian-source path).
    ``lam = +inf`` (clean data, ᾱ = 1) maps to t = 1 when the path reaches α(1) = 0; ``-inf`` to t = 0 when
    β(0) = 0.

    Args:
        interpolant: A Gaussian-source path.
        lam: Target λ value(s) (float or 1-D tensor).
        out_of_range: What to do with a λ outside [λ(0), λ(1)] (beyond a 1e-5 relative slack that absorbs
            float32 tables): ``"raise"`` a ``ValueError``, or ``"clamp"`` to the nearest end time.

    Returns:
        ``(t, clamped)``: float64 times of the shape of ``lam`` (1-D), and a bool mask of the clamped entries.
    """
    if out_of_range not in ("raise", "clamp"):
        raise ValueError(f"out_of_range must be 'raise' or 'clamp', got {out_of_range!r}")
    if not interpolant.gaussian_source:
        raise ValueError("matching noise levels needs a Gaussian-source path (x_t = α·ε + β·x1)")
    target = torch.as_tensor(lam, dtype=_F64).reshape(-1)
    ends = torch.tensor([0.0, 1.0], dtype=_F64)
    lam0, lam1 = (float(v) for v in interpolant.lam(ends))
    if not lam1 > lam0:
        raise ValueError(f"the path's log-SNR must increase from t=0 to t=1 (got λ(0)={lam0}, λ(1)={lam1})")
    slack0 = _RANGE_SLACK * max(1.0, abs(lam0)) if math.isfinite(lam0) else 0.0
    slack1 = _RANGE_SLACK * max(1.0, abs(lam1)) if math.isfinite(lam1) else 0.0
    low = target < lam0 - slack0
    high = target > lam1 + slack1
    if bool((low | high).any()) and out_of_range == "raise":
        bad = float(target[low | high][0])
        sigma = math.exp(-bad) if bad < 700 else 0.0
        raise ValueError(
            f"noise level σ = noise/signal = {sigma:.6g} (half log-SNR {bad:.6g}) lies outside the path "
            f"{interpolant!r}, whose σ spans [{math.exp(-lam1) if math.isfinite(lam1) else 0.0:.6g}, "
            f"{math.exp(-lam0) if math.isfinite(lam0) else math.inf:.6g}]; build the field on a path that covers "
            "the scheduler's noise levels (e.g. load_diffusers_field / DiscreteVPSchedule), or pass "
            "out_of_range='clamp'"
        )
    clamped = low | high
    tgt = target.clamp(lam0, lam1)
    t = torch.empty_like(tgt)
    at_hi = tgt >= lam1
    at_lo = tgt <= lam0
    t[at_hi] = 1.0
    t[at_lo] = 0.0
    inner = ~(at_hi | at_lo)
    if bool(inner.any()):
        t[inner] = interpolant.time_at_lam(tgt[inner])
    return t, clamped


class _LevelMap:
    """Memoised map from a diffusers noise level ᾱ to (genlab t, state scale k(t) = √(α² + β²))."""

    def __init__(self, interpolant: Interpolant, out_of_range: str) -> None:
        self.interpolant = interpolant
        self.out_of_range = out_of_range
        self.cache: dict[float, tuple[float, float]] = {}
        self.clamped = 0

    def __call__(self, abar: float) -> tuple[float, float]:
        key = float(abar)
        if key not in self.cache:
            if not 0.0 < key <= 1.0:
                raise ValueError(f"the scheduler produced a noise level alphas_cumprod={key} outside (0, 1]")
            lam = math.inf if key >= 1.0 else 0.5 * (math.log(key) - math.log1p(-key))
            t, clamped = time_at_log_snr(self.interpolant, lam, out_of_range=self.out_of_range)
            self.clamped += int(clamped.sum())
            c = self.interpolant.schedule.coeffs(t)
            k = torch.sqrt(c.alpha.to(_F64) ** 2 + c.beta.to(_F64) ** 2)
            self.cache[key] = (float(t[0]), float(k[0]))
        return self.cache[key]


# ---------------------------------------------------------------------------------------------------------- diffusers
def _scheduler_spec(spec: Any) -> tuple[type, dict[str, Any], str]:
    """(scheduler class, base config, display name) from a class name, a class or an instance."""
    if isinstance(spec, str):
        diffusers = _import_diffusers()
        cls = getattr(diffusers, spec, None)
        if not (isinstance(cls, type) and hasattr(cls, "set_timesteps") and hasattr(cls, "step")):
            known = sorted(n for n in dir(diffusers) if n.endswith("Scheduler"))
            raise ValueError(f"unknown diffusers scheduler {spec!r}; choose one of {known}")
        return cls, {}, spec
    if isinstance(spec, type):
        if not (hasattr(spec, "set_timesteps") and hasattr(spec, "step")):
            raise TypeError(f"{spec.__name__} is not a diffusers scheduler class (needs set_timesteps and step)")
        return spec, {}, spec.__name__
    if hasattr(spec, "config") and hasattr(spec, "set_timesteps") and hasattr(spec, "step"):
        return type(spec), {k: v for k, v in dict(spec.config).items() if not k.startswith("_")}, type(spec).__name__
    raise TypeError(
        "scheduler must be a diffusers scheduler class name (e.g. 'DDIMScheduler'), a scheduler class or an "
        f"instance (used as a config template), got {type(spec).__name__}"
    )


class DiffusersSampler(Sampler):
    """Run a diffusers scheduler's canonical loop on a genlab Field (benchmark adapter; ecosystem.md §4.5).

    The loop is diffusers' own: ``set_timesteps(N)``, then for every timestep ``scale_model_input`` → model →
    ``step(...).prev_sample``. A **fresh scheduler is built from the config for every** :meth:`sample` **call**
    (diffusers schedulers keep state — step index, past model outputs — between calls, diffusers issue #8711).

    **Noise levels (re-timing).** The scheduler's own discretisation defines the noise levels: its
    ``alphas_cumprod`` table and its ``sigmas``. Each model call is answered by the genlab Field at the genlab time
    t whose noise-to-signal ratio matches the level of that call, i.e. the root of λ(t) = ½·log(ᾱ/(1 − ᾱ)) on the
    field's interpolant (:func:`time_at_log_snr`). The field is thereby re-timed to the scheduler's noise levels;
    on a VP path ``x_genlab = x_vp`` and on any other Gaussian-source path the state is rescaled by
    ``k(t) = √(α² + β²)``. The level of a call is, with ``noise_level="scheduler"`` (default), the level the
    scheduler's update assumes for the current state (``sigmas[step_index]`` — ``sigmas_interpol`` on a KDPM2
    second stage — or ``alphas_cumprod[timestep]`` for schedulers without σ's, such as DDIM, DDPM and PNDM), so the
    model is exact where the field is; with ``noise_level="timestep"`` it is the level a model trained on the
    integer timesteps assigns to the (possibly fractional, or Karras-rounded) timestep it receives: ᾱ interpolated
    log-linearly between integers, exactly as :func:`load_diffusers_field` extends a UNet.

    **Prediction type.** The genlab prediction is converted to the scheduler's ``prediction_type``: ``epsilon``
    from the ``"noise"`` kind, ``sample`` from ``"x1"``, ``v_prediction`` as ``√ᾱ·ε̂ − √(1 − ᾱ)·x̂1`` (one network
    call each). Flow-matching and EDM schedulers (no ``alphas_cumprod``, or ``use_flow_sigmas``) are refused.

    **Grid and initial state.** The genlab ``grid`` is read only for its number of steps ``N = len(grid) − 1``;
    the scheduler chooses its own timesteps (reported as ``aux["timesteps"]``; the genlab times of the levels it
    visited are ``result.grid``). ``x_init`` is read as the initial noise ``ε = x_init/α(grid[0])`` (what
    :func:`genlab.sample` draws) and the scheduler starts from ``ε·init_noise_sigma`` at its first timestep. The
    result is the genlab state at the scheduler's final level (t = 1 for a final σ = 0; DEIS stops at
    σ_min ≈ 0.01, reported in ``result.grid[-1]``); ``aux["x_start"]`` is the genlab state the scheduler started
    from (at ``result.grid[0]``; ``trajectory[0]`` stays the ``x_init`` given), ``aux["alphas_cumprod"]`` the
    visited levels and ``aux["model_times"]`` the genlab times the field was queried at.

    NFE is counted on the field as for every genlab sampler (Heun-type schedulers: 2N − 1). Stochastic schedulers
    (DDPM, ancestral, SDE variants) get ``generator`` when their ``step`` accepts it; they draw noise for the
    whole batch, so their results depend on the batch size. Note diffusers' defaults: ``DDIMScheduler`` clips
    x̂0 to [−1, 1] unless ``clip_sample=False``.

    Args:
        scheduler: Scheduler class name in ``diffusers`` (``"DPMSolverMultistepScheduler"``), class, or an instance
            whose config is used as a template.
        noise_level: ``"scheduler"`` or ``"timestep"`` (see above).
        out_of_range: A level outside the field's path: ``"raise"`` (default) or ``"clamp"`` to the path's end.
        step_kwargs: Extra keyword arguments of ``scheduler.step`` (e.g. ``{"eta": 1.0}`` for DDIM).
        **config: Scheduler config overrides (``num_train_timesteps``, ``beta_schedule``, ``solver_order``,
            ``prediction_type``, ``timestep_spacing``, ...).

    Example:
        >>> res = genlab.sample(field, "diffusers:DPMSolverMultistepScheduler", steps=10, n=64,
        ...                     shape=(2,), seed=0)  # doctest: +SKIP
    """

    name: ClassVar[str] = "diffusers"
    requires: ClassVar[frozenset[str]] = frozenset({"gaussian_source", "semilinear"})

    def __init__(
        self,
        scheduler: Any,
        *,
        noise_level: str = "scheduler",
        out_of_range: str = "raise",
        step_kwargs: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        cls, base, display = _scheduler_spec(scheduler)
        if noise_level not in ("scheduler", "timestep"):
            raise ValueError(f"noise_level must be 'scheduler' or 'timestep', got {noise_level!r}")
        if out_of_range not in ("raise", "clamp"):
            raise ValueError(f"out_of_range must be 'raise' or 'clamp', got {out_of_range!r}")
        params = inspect.signature(cls.__init__).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = sorted(k for k in config if k not in params)
        if unknown and not accepts_any:
            raise TypeError(f"unknown config key(s) {unknown} for {cls.__name__}; allowed: "
                            f"{sorted(k for k in params if k != 'self')}")
        base = {k: v for k, v in base.items() if k in params or accepts_any}
        self.scheduler_cls = cls
        self.scheduler_name = display
        self.config = {**base, **config}
        self.noise_level = noise_level
        self.out_of_range = out_of_range
        self.step_kwargs = dict(step_kwargs or {})
        probe = self.make_scheduler()  # validates the config once, before any model call
        if not isinstance(getattr(probe, "alphas_cumprod", None), Tensor):
            raise TypeError(
                f"{display} has no alphas_cumprod table: the adapter needs a VP-like discrete scheduler (DDIM, DDPM, "
                "PNDM, DPMSolverMultistep/Singlestep, DEIS, UniPC, Euler/Heun/LMS/KDPM2 discrete); flow-matching "
                "and EDM schedulers are not supported"
            )
        if getattr(probe.config, "use_flow_sigmas", False):
            raise ValueError(f"{display} with use_flow_sigmas=True runs a flow-matching path; not supported")
        ptype = getattr(probe.config, "prediction_type", "epsilon")
        if ptype not in DIFFUSERS_PREDICTION_KINDS:
            raise ValueError(f"prediction_type {ptype!r} is not supported; choose one of "
                             f"{sorted(DIFFUSERS_PREDICTION_KINDS)}")
        self.prediction_type = ptype
        step_params = inspect.signature(probe.step).parameters
        bad = sorted(k for k in self.step_kwargs if k not in step_params)
        if bad:
            raise TypeError(f"unknown step_kwargs {bad} for {display}.step; allowed: {sorted(step_params)}")
        self._step_takes_generator = "generator" in step_params
        #: May draw noise (the scheduler's ``step`` takes a generator).
        self.stochastic = self._step_takes_generator  # type: ignore[misc]

    def make_scheduler(self) -> Any:
        """A fresh scheduler instance built from :attr:`config`."""
        return self.scheduler_cls(**self.config)

    def expected_nfe(self, steps: int) -> int | None:
        """Number of model calls of ``set_timesteps(steps)`` (``steps`` for most, ``2·steps − 1`` for Heun)."""
        sched = self.make_scheduler()
        sched.set_timesteps(int(steps))
        return len(sched.timesteps)

    # ------------------------------------------------------------------ noise levels
    @staticmethod
    def _state_abar(sched: Any, i: int, timestep: Tensor, acp: Tensor) -> float:
        """ᾱ of the scheduler's current state (model call ``i`` at ``timestep``)."""
        sigmas = getattr(sched, "sigmas", None)
        if isinstance(sigmas, Tensor) and sigmas.ndim == 1:
            idx = getattr(sched, "step_index", None)
            idx = i if idx is None else int(idx)
            table = sigmas
            if not getattr(sched, "state_in_first_order", True) and isinstance(getattr(sched, "sigmas_interpol", None),
                                                                               Tensor):
                table = sched.sigmas_interpol
            sigma = float(table[idx])
            return 1.0 / (1.0 + sigma * sigma)
        n = round(float(timestep))
        return float(acp[n])

    @staticmethod
    def _final_abar(sched: Any, last_timestep: Tensor, acp: Tensor) -> float:
        """ᾱ of the state the scheduler returns after its last step."""
        sigmas = getattr(sched, "sigmas", None)
        if isinstance(sigmas, Tensor) and sigmas.ndim == 1:
            sigma = float(sigmas[-1])
            return 1.0 / (1.0 + sigma * sigma)
        if hasattr(sched, "previous_timestep"):
            prev = int(sched.previous_timestep(last_timestep))
        else:
            prev = int(last_timestep) - sched.config.num_train_timesteps // sched.num_inference_steps
        if prev >= 0:
            return float(acp[prev])
        final = getattr(sched, "final_alpha_cumprod", 1.0)
        return float(final)

    @staticmethod
    def _timestep_abar(timestep: Tensor, schedule: DiscreteVPSchedule) -> float:
        """ᾱ a model trained on integer timesteps assigns to a (fractional) ``timestep``: log-linear in n."""
        n = float(timestep)
        t = schedule.timestep_to_t(torch.tensor([min(max(n, -1.0), schedule.num_train_timesteps - 1.0)],
                                                dtype=_F64))
        return float(schedule.coeffs(t).beta[0] ** 2)

    # ------------------------------------------------------------------ sampling
    def _model_output(self, pred: Prediction, abar: float) -> Tensor:
        kind = DIFFUSERS_PREDICTION_KINDS[self.prediction_type]
        if kind is not None:
            return pred(kind)
        return math.sqrt(abar) * pred("noise") - math.sqrt(max(0.0, 1.0 - abar)) * pred("x1")

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
        interp = field.interpolant
        if not bool(grid[-1] > grid[0]):
            raise ValueError("diffusers schedulers only generate: pass an increasing grid (noise → data)")
        steps = grid.numel() - 1
        sched = self.make_scheduler()
        sched.set_timesteps(steps, device=x.device)
        timesteps = sched.timesteps
        acp = sched.alphas_cumprod.detach().to(device="cpu", dtype=_F64)
        levels = _LevelMap(interp, self.out_of_range)
        train_schedule = DiscreteVPSchedule(acp) if self.noise_level == "timestep" else None
        kwargs = dict(self.step_kwargs)
        if self._step_takes_generator:  # a NoiseStream hands diffusers one generator per sample
            kwargs["generator"] = generator.generators if isinstance(generator, NoiseStream) else generator
        nd = x.ndim
        noise = x / append_dims(interp.init_scale(grid[0], x), nd)
        init_sigma = sched.init_noise_sigma
        x_s = noise * (float(init_sigma) if not isinstance(init_sigma, Tensor) else init_sigma.to(x.dtype).item())
        ve_state: bool | None = None
        state_abar = [self._state_abar(sched, 0, timesteps[0], acp)]
        model_times: list[float] = []

        def to_genlab(state: Tensor, abar: float) -> tuple[Tensor, float]:
            t_g, k = levels(abar)
            x_vp = state * math.sqrt(abar) if ve_state else state
            return x_vp * k, t_g

        n_calls = len(timesteps)
        for i, ts in enumerate(timesteps):
            model_in = sched.scale_model_input(x_s, ts)
            abar_state = self._state_abar(sched, i, ts, acp)
            state_abar[-1] = abar_state
            if ve_state is None:
                ve_state = not torch.equal(model_in, x_s)
                if ve_state and not torch.allclose(model_in, x_s * math.sqrt(abar_state), rtol=1e-4,
                                                   atol=1e-6 * float(x_s.abs().max())):
                    raise ValueError(
                        f"{self.scheduler_name}.scale_model_input is neither the identity (VP state) nor "
                        "1/sqrt(sigma^2 + 1) (VE state); this scheduler's parametrisation is not supported"
                    )
                x_start, _ = to_genlab(x_s, abar_state)
            abar_query = abar_state if train_schedule is None else self._timestep_abar(ts, train_schedule)
            t_q, k_q = levels(abar_query)
            model_times.append(t_q)
            pred = field.evaluate(model_in * k_q, t_q, cond)
            out = self._model_output(pred, abar_query)
            x_s = sched.step(out, ts, x_s, **kwargs).prev_sample
            next_abar = (self._state_abar(sched, i + 1, timesteps[i + 1], acp) if i + 1 < n_calls
                         else self._final_abar(sched, ts, acp))
            state_abar.append(next_abar)
            if trajectory is not None or callback is not None:
                x_g, _ = to_genlab(x_s, next_abar)
                if trajectory is not None:
                    trajectory.append(x_g)
                if callback is not None:
                    callback(StepInfo(i=i, t=levels(abar_state)[0], t_next=levels(next_abar)[0], x=x_g,
                                      x1_hat=pred("x1")))
        x_out, _ = to_genlab(x_s, state_abar[-1])
        times = torch.tensor([levels(a)[0] for a in state_abar], dtype=_F64, device=grid.device)
        aux = {
            "grid": times,
            "timesteps": timesteps.detach().cpu().clone(),
            "alphas_cumprod": torch.tensor(state_abar, dtype=_F64),
            "model_times": torch.tensor(model_times, dtype=_F64),
            "x_start": x_start,
            "scheduler": self.scheduler_name,
            "clamped_calls": levels.clamped,
        }
        return x_out, aux


def _diffusers_factory(rest: str, **kwargs: Any) -> DiffusersSampler:
    return DiffusersSampler(rest, **kwargs)


register_prefix("diffusers", _diffusers_factory)


# ---------------------------------------------------------------------------------------------------------- k-diffusion
def _k_diffusion_function(fn: str | Callable[..., Tensor]) -> tuple[Callable[..., Tensor], str]:
    if callable(fn):
        return fn, getattr(fn, "__name__", type(fn).__name__)
    if not isinstance(fn, str):
        raise TypeError(f"fn must be a k-diffusion sampler function or its name, got {type(fn).__name__}")
    try:
        module = importlib.import_module("k_diffusion.sampling")
    except ImportError as err:
        raise ImportError(
            "k-diffusion is not importable: pip install --no-deps k-diffusion (its package __init__ needs "
            "torchvision; benchmarks load k_diffusion/sampling.py on its own, see experiments/_peers.py)"
        ) from err
    name = fn if fn.startswith("sample_") else f"sample_{fn}"
    known = sorted(n for n in dir(module) if n.startswith("sample_") and callable(getattr(module, n)))
    if name not in known:
        raise ValueError(f"unknown k-diffusion sampler {fn!r}; choose one of {[k[len('sample_'):] for k in known]}")
    return getattr(module, name), name


class KDiffusionSampler(Sampler):
    """Run a k-diffusion sampler (``sample_euler``, ``sample_heun``, ``sample_lms``, ``sample_dpmpp_2m``, ...) on a
    genlab Field.

    k-diffusion integrates the VE state ``x̃ = x/β = x1 + σ·ε`` over ``σ = α/β`` (noise-to-signal ratio, EDM's
    σ; Karras et al. NeurIPS'22, eq. 1 with s(t) = 1) with a denoiser ``D(x̃, σ) = E[x1 | x̃]``. The adapter passes
    ``sigmas = α(t_i)/β(t_i)`` of the genlab grid (σ = 0 where the grid reaches clean data), starts from
    ``x_init/β(grid[0])`` and answers each call with the field's ``"x1"`` prediction at the genlab time of that σ
    (the grid time itself, or :func:`time_at_log_snr` for σ's between grid points such as DPM-2's midpoints).
    The result is ``β(grid[-1])·x̃`` (the genlab state at the grid's end). NFE is counted on the field (Heun:
    2N − 1 when the grid ends at σ = 0, else 2N).

    Stochastic k-diffusion samplers that accept ``noise_sampler`` get per-sample noise from ``generator``; those
    that draw with ``torch.randn_like`` (e.g. ``sample_euler`` with ``s_churn > 0``) ignore ``generator``.
    ``trajectory``/``callback`` report the state entering each step after the first (after any churn).

    Args:
        fn: A k-diffusion ``sample_*`` function, or its name with or without the ``sample_`` prefix (looked up in
            ``k_diffusion.sampling``).
        **options: Keyword options of ``fn`` (``order=``, ``s_churn=``, ``eta=``, ...).
    """

    name: ClassVar[str] = "k-diffusion"
    requires: ClassVar[frozenset[str]] = frozenset({"gaussian_source", "semilinear"})
    stochastic: ClassVar[bool] = True

    def __init__(self, fn: str | Callable[..., Tensor], **options: Any) -> None:
        func, display = _k_diffusion_function(fn)
        params = inspect.signature(func).parameters
        reserved = {"model", "x", "sigmas", "extra_args", "callback", "disable", "noise_sampler"}
        bad = sorted(k for k in options if k in reserved or k not in params)
        if bad:
            raise TypeError(f"bad options {bad} for {display}; allowed: {sorted(set(params) - reserved)}")
        self.fn = func
        self.fn_name = display
        self.options = dict(options)
        self._takes_noise_sampler = "noise_sampler" in params

    def expected_nfe(self, steps: int) -> int | None:
        """Unknown in general (Heun-type k-diffusion samplers skip their correction before σ = 0): counted."""
        return None

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
        interp = field.interpolant
        if not bool(grid[-1] > grid[0]):
            raise ValueError("k-diffusion samplers only generate: pass an increasing grid (noise → data)")
        c = interp.schedule.coeffs(grid.to(_F64))
        alpha, beta = c.alpha.to(_F64), c.beta.to(_F64)
        if not float(beta[0]) > 0:
            raise ValueError(
                f"the grid starts at t={float(grid[0]):.4g} where the signal coefficient β is 0 (σ = ∞); start at a "
                "finite noise level (e.g. genlab.samplers.grids.log_snr)"
            )
        sig64 = torch.where(alpha > 0, alpha / beta, torch.zeros_like(alpha))
        sigmas = sig64.to(device=x.device, dtype=x.dtype)
        times = {float(s): float(t) for s, t in zip(sigmas, grid.to(_F64))}
        betas = {float(t): float(b) for t, b in zip(grid.to(_F64), beta)}

        def genlab_time(sigma: float) -> float:
            if sigma in times:
                return times[sigma]
            t, _ = time_at_log_snr(interp, -math.log(sigma) if sigma > 0 else math.inf, out_of_range="raise")
            times[sigma] = float(t[0])
            return times[sigma]

        def beta_at(t: float) -> float:
            if t not in betas:
                betas[t] = float(interp.schedule.coeffs(torch.tensor([t], dtype=_F64)).beta[0])
            return betas[t]

        def denoiser(x_ve: Tensor, sigma: Tensor, **_: Any) -> Tensor:
            s = sigma.reshape(-1)
            if bool((s != s[0]).any()):
                raise ValueError("the k-diffusion adapter needs one noise level per call (got a batch of σ's)")
            t = genlab_time(float(s[0]))
            return field.predict(x_ve * beta_at(t), t, "x1", cond)

        step = [0]

        def on_step(info: dict[str, Any]) -> None:
            i = int(info["i"])
            if i == 0:
                return
            sig = float(info.get("sigma_hat", info["sigma"]))
            t = genlab_time(sig)
            x_g = info["x"] * beta_at(t)
            if trajectory is not None:
                trajectory.append(x_g)
            if callback is not None:
                callback(StepInfo(i=i - 1, t=float(grid[i - 1]), t_next=float(grid[i]), x=x_g))
            step[0] = i

        kwargs = dict(self.options)
        if self._takes_noise_sampler:
            stream = NoiseStream(x, generator, steps_hint=grid.numel() - 1)
            kwargs["noise_sampler"] = lambda sigma, sigma_next: stream()
        x_ve = x / float(beta[0])
        hook = on_step if (trajectory is not None or callback is not None) else None
        out = self.fn(denoiser, x_ve, sigmas, extra_args={}, callback=hook, disable=True, **kwargs)
        x_out = out * float(beta[-1])
        if hook is not None:
            last = grid.numel() - 2
            if trajectory is not None:
                trajectory.append(x_out)
            if callback is not None:
                callback(StepInfo(i=last, t=float(grid[last]), t_next=float(grid[-1]), x=x_out))
        return x_out, {"sigmas": sigmas.detach().cpu().clone(), "fn": self.fn_name}


def _k_diffusion_factory(rest: str, **kwargs: Any) -> KDiffusionSampler:
    return KDiffusionSampler(rest, **kwargs)


register_prefix("k-diffusion", _k_diffusion_factory)


# ---------------------------------------------------------------------------------------------------------- UNet loader
class DiffusersUNetNet(nn.Module):
    """A diffusers ``UNet2DModel`` called at the continuous training timestep of genlab time t.

    ``forward(x, t)`` evaluates ``unet(x, n(t))`` with ``n(t) = T(1 − t) − 1`` (:class:`DiscreteVPSchedule`'s
    mapping) passed as a **float** tensor: the UNet was trained on the integers 0..T−1 and its sinusoidal embedding
    is the standard continuous extension in between (a Python number would be cast to ``long`` by diffusers). It
    returns the prediction of the field's kind: the raw output for ``epsilon`` (kind ``"noise"``) and ``sample``
    (kind ``"x1"``); for ``v_prediction`` the ε-prediction ``ε̂ = α·x + β·v̂`` (Salimans & Ho ICLR'22, §4; exact on a
    VP path, no division).

    Args:
        unet: The ``UNet2DModel``.
        schedule: The discrete VP schedule of its scheduler.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
    """

    def __init__(self, unet: nn.Module, schedule: DiscreteVPSchedule, prediction_type: str) -> None:
        super().__init__()
        if prediction_type not in DIFFUSERS_PREDICTION_KINDS:
            raise ValueError(f"prediction_type {prediction_type!r} is not supported; choose one of "
                             f"{sorted(DIFFUSERS_PREDICTION_KINDS)}")
        self.unet = unet
        self.schedule = schedule
        self.prediction_type = prediction_type

    @property
    def kind(self) -> str:
        """The genlab kind this net returns."""
        return "x1" if self.prediction_type == "sample" else "noise"

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        if cond is not None:
            raise ValueError("a pretrained diffusers UNet2DModel takes no condition channels; pass cond=None "
                             "(class labels go in cond={'labels': y})")
        n = self.schedule.t_to_timestep(t.to(_F64))
        # t = 1 − (n + 1)/T is inexact in the time dtype (the Field hands t over in the data dtype): snap n to the
        # integer it round-trips from when it lies within the time's resolution of one
        tol = 4 * self.schedule.num_train_timesteps * torch.finfo(t.dtype).eps
        n = torch.where((n - n.round()).abs() <= tol, n.round(), n)
        n = n.to(device=x.device, dtype=torch.float32)
        param = next(self.unet.parameters(), None)
        dtype = param.dtype if param is not None else x.dtype
        out = self.unet(x.to(dtype), n, class_labels=labels).sample.to(x.dtype)
        if self.prediction_type != "v_prediction":
            return out
        c = self.schedule.coeffs(t.to(_F64))
        alpha, beta = append_dims(c.alpha.to(x.dtype), x.ndim), append_dims(c.beta.to(x.dtype), x.ndim)
        return alpha * x + beta * out


def _load_scheduler(spec: Any) -> Any:
    diffusers = _import_diffusers()
    if hasattr(spec, "alphas_cumprod") and hasattr(spec, "config"):
        return spec
    if isinstance(spec, (str, Path)):
        folder = Path(spec)
        if folder.is_file():
            folder = folder.parent
        if not (folder / "scheduler_config.json").is_file():
            raise FileNotFoundError(f"no scheduler_config.json in {folder}; pass the folder written by "
                                    "scheduler.save_pretrained, a scheduler instance or a config dict")
        config = diffusers.DDPMScheduler.load_config(str(folder), local_files_only=True)
    elif isinstance(spec, dict):
        config = dict(spec)
    else:
        raise TypeError(f"scheduler must be a diffusers scheduler, a folder or a config dict, got {type(spec).__name__}")
    cls_name = config.get("_class_name", "DDPMScheduler")
    if not (cls_name.endswith("Scheduler") and hasattr(diffusers, cls_name)):
        raise ValueError(f"unknown scheduler class {cls_name!r} in the scheduler config")
    sched = getattr(diffusers, cls_name).from_config(config)
    if not isinstance(getattr(sched, "alphas_cumprod", None), Tensor):
        raise TypeError(f"{cls_name} has no alphas_cumprod table; load_diffusers_field needs a VP scheduler config "
                         "(beta_schedule 'linear', 'scaled_linear' or 'squaredcos_cap_v2', or trained_betas)")
    return sched


def load_diffusers_field(
    path_or_unet: str | Path | nn.Module,
    scheduler: Any = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Field:
    """Wrap a diffusers ``UNet2DModel`` and its scheduler as a genlab :class:`~genlab.models.Field` (no network).

    The path is the scheduler's own: :class:`~genlab.interpolants.discrete.DiscreteVPSchedule` built from its
    ``alphas_cumprod`` (from the betas of ``beta_schedule`` = ``linear``, ``scaled_linear`` or
    ``squaredcos_cap_v2``, or ``trained_betas``), with genlab time ``t = 1 − (n + 1)/T`` and ᾱ = 1 at t = 1; the
    network is :class:`DiffusersUNetNet` (continuous timestep n(t) as a float). The field's kind is ``"noise"``
    for ``epsilon`` and ``v_prediction`` models and ``"x1"`` for ``sample`` models, so every genlab sampler runs on
    it (``genlab.sample(field, "dpmpp_2m", grid="log_snr", ...)``).

    Args:
        path_or_unet: A local folder written by ``save_pretrained`` — a pipeline folder with ``unet/`` and
            ``scheduler/`` subfolders, or a ``UNet2DModel`` folder (``config.json`` + weights) with an optional
            ``scheduler_config.json`` next to it — or a ``UNet2DModel`` instance.
        scheduler: The scheduler: an instance, a folder with ``scheduler_config.json`` or a config dict. Required
            when it cannot be found next to the UNet.
        device: Device to move the UNet to.
        dtype: Dtype to cast the UNet to (e.g. ``torch.float64`` for parity tests).

    Returns:
        The :class:`Field`.

    Raises:
        FileNotFoundError: the folder or its configs are missing.
        ValueError: the model is not a ``UNet2DModel``, or the scheduler class is unknown.
        TypeError: the scheduler has no VP table (``alphas_cumprod``).
    """
    diffusers = _import_diffusers()
    if isinstance(path_or_unet, (str, Path)):
        root = Path(path_or_unet)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder; pass a local folder written by save_pretrained")
        unet_dir = root / "unet" if (root / "unet" / "config.json").is_file() else root
        config_file = unet_dir / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no UNet config.json in {root} or {root / 'unet'}")
        config = diffusers.UNet2DModel.load_config(str(unet_dir), local_files_only=True)
        if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
            raise ValueError(f"load_diffusers_field supports UNet2DModel, the folder holds {config['_class_name']}")
        unet = diffusers.UNet2DModel.from_pretrained(str(unet_dir), local_files_only=True)
        if scheduler is None:
            for cand in (root / "scheduler", root):
                if (cand / "scheduler_config.json").is_file():
                    scheduler = cand
                    break
            else:
                raise FileNotFoundError(f"no scheduler_config.json in {root} or {root / 'scheduler'}; pass scheduler=")
    elif isinstance(path_or_unet, nn.Module):
        if type(path_or_unet).__name__ != "UNet2DModel":
            raise ValueError(f"path_or_unet must be a diffusers UNet2DModel, got {type(path_or_unet).__name__}")
        unet = path_or_unet
        if scheduler is None:
            raise ValueError("pass scheduler= (an instance, folder or config) together with a UNet2DModel instance")
    else:
        raise TypeError(f"path_or_unet must be a folder or a UNet2DModel, got {type(path_or_unet).__name__}")
    sched = _load_scheduler(scheduler)
    unet = unet.to(device=device, dtype=dtype).eval()
    schedule = DiscreteVPSchedule(sched.alphas_cumprod)
    ptype = getattr(sched.config, "prediction_type", "epsilon")
    net = DiffusersUNetNet(unet, schedule, ptype)
    interpolant = Interpolant(schedule, name=f"DiffusersVP({type(sched).__name__}, T={schedule.num_train_timesteps})")
    return Field(net, interpolant, net.kind)
