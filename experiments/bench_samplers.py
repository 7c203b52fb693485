"""Sampler benchmark: every genlab sampler next to diffusers' schedulers and k-diffusion's samplers, in one run.

Problem (the exact probability-flow ODE of a Gaussian mixture, so every error is a discretisation error):

* data x1 ~ (1/8)·Σ_k N(μ_k, 0.09·I_d), μ_k ~ N(0, I_d) drawn once per d (seed 1000 + d); d ∈ {2, 16, 64};
  per-coordinate data variance ≈ 1.1 (unit-scale data, as VP models assume);
* two Gaussian-source paths carrying the same exact field (closed-form posterior means of isotropic components):
  ``vp`` = the discrete DDPM path of diffusers' default ``DDPMScheduler`` (linear β 1e-4…0.02, T = 1000) as
  :class:`~genlab.interpolants.discrete.DiscreteVPSchedule` (field kind ``"noise"``), and ``linear`` = rectified flow
  x_t = (1−t)ε + t·x1 (field kind ``"velocity"``);
* one fixed set of initial noises ε (seed 7 + d) shared by every sampler; all samplers integrate over the DDPM noise
  range σ = noise/signal ∈ [σ(n=0) ≈ 0.0100, σ(n=999) ≈ 157.4] (peers: their own schedule inside that range);
* reference: torchdiffeq dopri5 at rtol = atol = 1e-10 in float64 on the path-independent form of the ODE,
  d x̃/dσ = ε̂(x̃, σ) with x̃ = x/β (regular down to σ = 0), started from each sampler's own initial state and level
  and read at its own final level (diffusers DEIS stops at σ_min ≈ 0.01; DDIM "leading" starts below σ_max). It is
  cross-checked against genlab's ``dopri5`` sampler (rtol 1e-10) on the linear path.

Metrics, in data units (x̃ = x/β at the final level): endpoint RMSE against the reference, the median per-sample
RMS error and the RMSE without the worst 1 % (a single basin switch adds ≈ 0.1 to the RMSE with 512 noises), and the
sliced Wasserstein-2 distance (256 fixed directions) to 4096 target samples (its floor: the reference endpoints).
"Best" rows are ranked by the RMSE without the worst 1 % (the median alone hides heavy error tails) and, in a
second table, by the median.

Fair NFE: every sampler gets the step count that gives the NFE budget (Heun-type: 2N or 2N − 1, RK4: 4N, ...);
where a budget cannot be hit exactly the largest NFE below it is used and the table shows the actual NFE.
NFE is counted on the field, never computed. genlab grids: uniform in log-SNR on the VP path for every sampler;
on the linear path uniform in t for the black-box ODE/SDE samplers and IADB (rectified-flow practice) and
log-SNR for the exponential integrators; EDM's sampler and the "heun (karras)" row use the Karras ρ = 7 grid;
"(ddpm grid)" rows run genlab's exponential integrators on the peers' grid (diffusers' linspace timesteps + σ = 0).
Peers run with their library defaults on the DDPM schedule (DDIM: ``clip_sample=False``), k-diffusion with its
Karras (ρ = 7) or exponential σ schedule over [σ_min, σ_max] plus a final σ = 0.

Overhead: wall time per network evaluation of the sampler loop with a trivial model (ε̂ = x/2), batch 4096, d = 64,
float32, 50 steps, reported as genlab / peer ratios against the peers' own loops (not through genlab's adapters).

Run: ``python experiments/bench_samplers.py [--quick]`` or ``genlab bench samplers [--quick]``. Writes
``experiments/results/samplers.{json,md,png}`` (``samplers_quick.*`` with ``--quick``). The full run takes about
5–10 minutes on 2 CPU cores with one torch thread.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from _peers import load_k_diffusion_sampling

import genlab.samplers  # noqa: F401 - registers every sampler
from genlab.interpolants import Interpolant, RectifiedFlow
from genlab.interpolants.discrete import DiscreteVPSchedule
from genlab.metrics import sliced_wasserstein
from genlab.models import Field
from genlab.samplers import SAMPLERS, Sampler, get_sampler, karras, log_snr, uniform
from genlab.samplers.adapters import DiffusersSampler, KDiffusionSampler, time_at_log_snr
from genlab.utils import atomic_write

F64 = torch.float64
FULL_DIMS = (2, 16, 64)
FULL_NFE = (4, 5, 6, 8, 10, 15, 20, 50)
QUICK_DIMS = (2, 16)
QUICK_NFE = (5, 10, 20)
N_COMPONENTS = 8
COMPONENT_VAR = 0.09
N_TARGET = 4096
N_DIRECTIONS = 256
DDPM = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}

#: genlab samplers left out of the table, with the reason.
GENLAB_SKIP = {"dopri5": "adaptive step size (NFE not fixed); used to cross-check the reference instead",
               "searched": "needs a preset: run below with presets searched per (d, path, NFE) from other noises"}
#: Samplers that only need a velocity (black-box ODE/SDE solvers): uniform-t grid on the linear path.
BLACK_BOX_ON_LINEAR = {"euler", "heun", "midpoint", "rk4", "iadb", "euler_maruyama", "sde_heun"}

#: Exponential integrators also run on the peers' grid (diffusers' linspace timesteps + final σ = 0): a grid ablation.
GRID_ABLATION = ("dpmpp_2m", "dpmpp_3m", "deis_tab", "ipndm")
#: diffusers peers: (row label, scheduler class, config on top of the DDPM schedule).
DIFFUSERS_PEERS: list[tuple[str, str, dict[str, Any]]] = [
    ("DDIM", "DDIMScheduler", {"clip_sample": False}),
    ("DPM++2M", "DPMSolverMultistepScheduler", {}),
    ("DPM++3M", "DPMSolverMultistepScheduler", {"solver_order": 3}),
    ("DPM++2M karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    ("DEIS-2", "DEISMultistepScheduler", {}),
    ("DEIS-3", "DEISMultistepScheduler", {"solver_order": 3}),
    ("UniPC-2", "UniPCMultistepScheduler", {}),
    ("UniPC-3", "UniPCMultistepScheduler", {"solver_order": 3}),
    ("Euler", "EulerDiscreteScheduler", {}),
    ("Heun", "HeunDiscreteScheduler", {}),
]
#: k-diffusion peers: (sampler function, σ schedule, NFE per step count n).
K_DIFFUSION_PEERS: list[tuple[str, str]] = [
    ("euler", "karras"), ("heun", "karras"), ("lms", "karras"), ("dpmpp_2m", "karras"),
    ("lms", "exponential"), ("dpmpp_2m", "exponential"),
]


# ---------------------------------------------------------------------------------------------------------- problem
@dataclass
class IsotropicGMM:
    """Mixture of isotropic Gaussians ``(1/K) Σ_k N(μ_k, s²_k I)`` with its exact posterior means on any path."""

    means: Tensor  # (K, d) float64
    variances: Tensor  # (K,)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def posterior(self, x: Tensor, noise: Tensor, signal: Tensor, *, want_x1: bool = True
                  ) -> tuple[Tensor, Tensor | None]:
        """(E[ε | x], E[x1 | x]) for ``x = noise·ε + signal·x1`` (float64; ``noise``, ``signal`` of shape (B,)).

        Component k: x ~ N(signal·μ_k, v_k I), v_k = signal²s²_k + noise²; E[ε | x, k] = (noise/v_k)(x − signal μ_k),
        E[x1 | x, k] = μ_k + (signal s²_k/v_k)(x − signal μ_k); weights ∝ N(x; signal μ_k, v_k I).
        """
        a, b = noise[:, None], signal[:, None]
        v = b**2 * self.variances[None, :] + a**2  # (B, K)
        diff = x[:, None, :] - b[:, :, None] * self.means[None]  # (B, K, d)
        sq = diff.pow(2).sum(-1)
        logw = -0.5 * self.dim * torch.log(v) - 0.5 * sq / v
        w = torch.softmax(logw, dim=1)
        eps = torch.einsum("bk,bkd->bd", w * a / v, diff)
        if not want_x1:
            return eps, None
        x1 = w @ self.means + torch.einsum("bk,bkd->bd", w * b * self.variances[None] / v, diff)
        return eps, x1

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        comp = torch.randint(0, self.means.shape[0], (n,), generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=F64)
        return self.means[comp] + self.variances[comp].sqrt()[:, None] * z


class ExactGMMNet(nn.Module):
    """The exact prediction of ``kind`` (``noise``, ``x1`` or ``velocity``) of a Gaussian-source path."""

    def __init__(self, gmm: IsotropicGMM, interpolant: Interpolant, kind: str) -> None:
        super().__init__()
        self.gmm, self.interpolant, self.kind = gmm, interpolant, kind

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        c = self.interpolant.schedule.coeffs(t.to(F64))
        eps, x1 = self.gmm.posterior(x.to(F64), c.alpha.to(F64), c.beta.to(F64), want_x1=self.kind != "noise")
        if self.kind == "noise":
            out = eps
        elif self.kind == "x1":
            out = x1
        else:
            out = c.d_alpha.to(F64)[:, None] * eps + c.d_beta.to(F64)[:, None] * x1
        return out.to(x.dtype)


def make_gmm(d: int) -> IsotropicGMM:
    g = torch.Generator().manual_seed(1000 + d)
    means = torch.randn(N_COMPONENTS, d, generator=g, dtype=F64)
    return IsotropicGMM(means, torch.full((N_COMPONENTS,), COMPONENT_VAR, dtype=F64))


def make_paths() -> dict[str, tuple[Interpolant, str]]:
    import diffusers

    ddpm = Interpolant(DiscreteVPSchedule(diffusers.DDPMScheduler(**DDPM).alphas_cumprod), name="DDPM-VP")
    return {"vp": (ddpm, "noise"), "linear": (RectifiedFlow(), "velocity")}


def sigma_at(interp: Interpolant, t: float | Tensor) -> Tensor:
    tt = torch.as_tensor(t, dtype=F64).reshape(-1)
    c = interp.schedule.coeffs(tt)
    return torch.where(c.alpha > 0, c.alpha / c.beta, torch.zeros_like(c.alpha)).to(F64)


def beta_at(interp: Interpolant, t: float | Tensor) -> Tensor:
    return interp.schedule.coeffs(torch.as_tensor(t, dtype=F64).reshape(-1)).beta.to(F64)


def t_of_sigma(interp: Interpolant, sigma: Tensor) -> Tensor:
    s = torch.as_tensor(sigma, dtype=F64).reshape(-1)
    lam = torch.where(s > 0, -torch.log(s.clamp_min(1e-300)), torch.full_like(s, math.inf))
    return time_at_log_snr(interp, lam)[0]


# ---------------------------------------------------------------------------------------------------------- entries
@dataclass
class Plan:
    """One run of one sampler at one NFE budget."""

    sampler: Sampler
    grid: Tensor
    steps: int
    expected_nfe: int | None


@dataclass
class Entry:
    """A table row: how to build the run for a budget."""

    label: str
    family: str  # "genlab", "diffusers", "k-diffusion"
    note: str
    plan: Callable[[int], Plan | None]
    stochastic: bool = False


def _pick_steps(nfe_of: Callable[[int], int | None], budget: int) -> tuple[int, int] | None:
    best = None
    for n in range(1, budget + 1):
        e = nfe_of(n)
        if e is None:
            return None
        if e == budget:
            return n, e
        if e < budget:
            best = (n, e)
    return best


def ddpm_linspace_sigmas(ddpm_sigmas: Tensor, steps: int) -> Tensor:
    """σ's of diffusers' default ``timestep_spacing="linspace"`` for ``steps`` steps, plus the final σ = 0."""
    n_train = ddpm_sigmas.numel()
    timesteps = torch.linspace(0, n_train - 1, steps + 1, dtype=F64).round().flip(0)[:-1].long()
    return torch.cat([ddpm_sigmas[timesteps], torch.zeros(1, dtype=F64)])


def genlab_entries(interp: Interpolant, field_: Field, t_lo: float, t_hi: float, ddpm_sigmas: Tensor,
                   skipped: dict[str, str]) -> list[Entry]:
    entries: list[Entry] = []

    def grid_fn(kind: str) -> Callable[[int], Tensor]:
        if kind == "ddpm":
            return lambda n: t_of_sigma(interp, ddpm_linspace_sigmas(ddpm_sigmas, n))
        if kind == "uniform":
            return lambda n: uniform(n, t_start=t_lo, t_end=t_hi)
        if kind == "karras":
            return lambda n: karras(n, interp, rho=7.0, t_start=t_lo, t_end=t_hi)
        return lambda n: log_snr(n, interp, t_start=t_lo, t_end=t_hi)

    linear = interp.schedule.__class__.__name__ == "LinearSchedule"
    rows: list[tuple[str, str, str]] = []  # (label, registry name, grid)
    for name in sorted(SAMPLERS):
        if name in GENLAB_SKIP:
            skipped[name] = GENLAB_SKIP[name]
            continue
        try:
            smp = get_sampler(name)
        except Exception as err:  # noqa: BLE001 - e.g. needs constructor arguments
            skipped[name] = f"cannot build with defaults: {err}"
            continue
        try:
            smp.check(field_)
        except (ValueError, TypeError) as err:
            skipped[name] = str(err).splitlines()[0][:200]
            continue
        if name == "edm":
            grid = "karras"
        elif linear and name in BLACK_BOX_ON_LINEAR:
            grid = "uniform"
        else:
            grid = "log_snr"
        rows.append((name, name, grid))
        if name == "heun":
            rows.append(("heun (karras)", name, "karras"))
        if name in GRID_ABLATION:
            rows.append((f"{name} (ddpm grid)", name, "ddpm"))

    for label, name, grid in rows:
        make_grid = grid_fn(grid)
        cls = SAMPLERS[name]
        has_final_euler = "final_euler" in inspect.signature(cls.__init__).parameters

        def plan(budget: int, name: str = name, make_grid: Callable[[int], Tensor] = make_grid,
                 has_final_euler: bool = has_final_euler) -> Plan | None:
            variants = [{}, {"final_euler": True}] if has_final_euler else [{}]
            options = []
            for opts in variants:
                smp = get_sampler(name, **opts)
                pick = _pick_steps(smp.expected_nfe, budget)
                if pick is not None:
                    options.append((pick[1] == budget, pick[1], smp, pick[0]))
            if not options:
                return None
            options.sort(key=lambda o: (o[0], o[1]), reverse=True)
            _, nfe, smp, steps = options[0]
            return Plan(smp, make_grid(steps), steps, nfe)

        stochastic = bool(getattr(SAMPLERS[name], "stochastic", False))
        entries.append(Entry(label, "genlab", f"{grid} grid", plan, stochastic))
    return entries


def diffusers_entries() -> list[Entry]:
    entries = []
    for label, cls_name, cfg in DIFFUSERS_PEERS:
        proto = DiffusersSampler(cls_name, **DDPM, **cfg)
        cache: dict[int, int] = {}

        def nfe_of(n: int, proto: DiffusersSampler = proto, cache: dict[int, int] = cache) -> int:
            if n not in cache:
                cache[n] = int(proto.expected_nfe(n))
            return cache[n]

        def plan(budget: int, proto: DiffusersSampler = proto, nfe_of: Callable[[int], int] = nfe_of) -> Plan | None:
            pick = _pick_steps(nfe_of, budget)
            if pick is None:
                return None
            return Plan(proto, uniform(pick[0]), pick[0], pick[1])

        note = ", ".join(f"{k}={v}" for k, v in cfg.items()) or "defaults"
        entries.append(Entry(f"diffusers {label}", "diffusers", note, plan))
    return entries


def k_diffusion_entries(kd: Any, interp: Interpolant, sigma_min: float, sigma_max: float) -> list[Entry]:
    entries = []
    for fn, schedule in K_DIFFUSION_PEERS:
        two_stage = fn in ("heun", "dpm_2")

        def plan(budget: int, fn: str = fn, schedule: str = schedule, two_stage: bool = two_stage) -> Plan | None:
            n = (budget + 1) // 2 if two_stage else budget
            if n < 1:
                return None
            if schedule == "karras":
                sig = kd.get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0)
            else:
                sig = kd.get_sigmas_exponential(n, sigma_min, sigma_max)
            sig = sig.to(F64)
            grid = torch.cat([t_of_sigma(interp, sig[:-1]), torch.ones(1, dtype=F64)])
            return Plan(KDiffusionSampler(fn), grid, n, 2 * n - 1 if two_stage else n)

        entries.append(Entry(f"k-diffusion {fn} ({schedule})", "k-diffusion", f"{schedule} σ + final 0", plan))
    return entries


# ---------------------------------------------------------------------------------------------------------- searched
#: Search settings of the bench (scaled for CPU; genlab.samplers.search.search_solver, method evolution+dss).
SEARCH = {"method": "evolution+dss", "noises": 128, "teacher": "dpmpp_3m", "teacher_steps": 200,
          "evolution_options": {"epochs": 6, "population": 16, "select": 6, "mutations": 6, "crossovers": 4},
          "dss_options": {"iterations": 80, "batch": 48, "eval_every": 10}}


@dataclass
class SearchLog:
    """Presets searched during the run and what each search cost."""

    presets: dict[tuple[Any, ...], Any]
    rows: list[dict[str, Any]]


def run_search(log: SearchLog, key: tuple[Any, ...], field_: Field, nfe: int, *, shape: Sequence[int], t_lo: float,
               t_hi: float, seed: int, model: str, say: Callable[..., None],
               settings: dict[str, Any] | None = None) -> Any:
    """Search (once per key) a preset for ``field_`` at ``nfe`` on noises of ``seed`` (never the table's noises)."""
    from genlab.samplers.search import search_solver

    if key not in log.presets:
        opts = {**SEARCH, **(settings or {})}
        res = search_solver(field_, nfe, shape=shape, t_start=t_lo, t_end=t_hi, seed=seed, model=model, **opts)
        log.presets[key] = res.preset
        log.rows.append({"key": [str(k) for k in key], "model": model, "nfe": nfe, "seconds": res.seconds,
                         "settings": {k: v for k, v in opts.items() if k != "method"},
                         "search_nfe": res.nfe_spent, "start_error": res.start_error, "error": res.error,
                         "orders": list(res.preset.table.orders)})
        say(f"  searched {model} NFE {nfe}: held-out error {res.start_error:.4g} -> {res.error:.4g} "
            f"({res.seconds:.0f} s, {res.nfe_spent} NFE)")
    return log.presets[key]


def searched_entry(label: str, note: str, get_preset: Callable[[int], Any]) -> Entry:
    """A table row that runs the preset ``get_preset(budget)`` with genlab's ``searched`` sampler."""
    from genlab.samplers.searched import SearchedSampler

    def plan(budget: int) -> Plan | None:
        preset = get_preset(budget)
        if preset is None:
            return None
        return Plan(SearchedSampler(preset=preset), preset.times.clone(), preset.steps, preset.steps)

    return Entry(label, "searched", note, plan)


def gmm_searched_entries(log: SearchLog, d: int, path_name: str, field_: Field, t_lo: float, t_hi: float,
                         say: Callable[..., None]) -> list[Entry]:
    """The searched row (presets searched on this field) and, at d = 64, the transfer row (the d = 16 presets)."""
    def own(b: int) -> Any:
        return run_search(log, ("gmm", d, path_name, b), field_, b, shape=(d,), t_lo=t_lo, t_hi=t_hi,
                          seed=100 + d, model=f"exact GMM d={d} ({path_name})", say=say)

    entries = [searched_entry("searched", "evolution+dss preset, this field", own)]
    if d == 64:
        def transfer(b: int) -> Any:
            return log.presets.get(("gmm", 16, path_name, b))

        entries.append(searched_entry("searched (d=16 preset)", "transfer: preset searched on d = 16", transfer))
    return entries


# ---------------------------------------------------------------------------------------------------------- trained
#: Trained runs benchmarked (config name → run folder, relative to the repository root).
TRAINED_RUNS = {"moons_si": "out/train_moons_configs/moons_si", "digits_si": "out/searched/digits_si"}
#: NFE budgets on the trained models (trimmed for CPU: the issue's goal is stated at NFE 5–8).
TRAINED_NFE = (5, 8)
#: Hand-designed genlab samplers run on the trained models (plus part A's 'unipc'/'dpm_solver_v3' when registered).
TRAINED_GENLAB = ("ddim", "dpmpp_2m", "dpmpp_3m", "deis_tab", "ipndm", "heun", "midpoint", "euler", "unipc",
                  "dpm_solver_v3")
#: Peers run on the trained models (labels of the GMM table's peers).
TRAINED_PEERS = ("diffusers DPM++2M", "diffusers UniPC-2", "diffusers UniPC-3", "diffusers DEIS-3",
                 "k-diffusion dpmpp_2m (exponential)", "k-diffusion lms (exponential)")
TRAINED_NOISES = 256
#: Lighter search on the digits U-Net (each step back-propagates through the network; CPU budget).
TRAINED_SEARCH = {"digits_si": {"noises": 96, "evolution_options": {"epochs": 5, "population": 14, "select": 5,
                                                                     "mutations": 5, "crossovers": 4},
                                "dss_options": {"iterations": 50, "batch": 32, "eval_every": 10}}}


def field_reference(field_: Field, x_start: Tensor, t_start: float, t_ends: Sequence[float]) -> dict[float, Tensor]:
    """genlab dopri5 (rtol = atol = 1e-6) from ``x_start`` (data units, at ``t_start``) to each end, in data units."""
    interp = field_.interpolant
    dop = get_sampler("dopri5", rtol=1e-6, atol=1e-6)
    x0 = (x_start * beta_at(interp, t_start).reshape(-1, *([1] * (x_start.ndim - 1)))).to(torch.float32)
    out = {}
    for te in sorted(set(t_ends)):
        res = dop.sample(field_, x0, torch.tensor([t_start, te], dtype=F64))
        out[te] = res.x.to(F64) / beta_at(interp, te).reshape(-1, *([1] * (x_start.ndim - 1)))
    return out


def trained_section(kd: Any, say: Callable[..., None], search_log: SearchLog, sigma_min: float, sigma_max: float,
                    ddpm_sigmas: Tensor, budgets: Sequence[int], search: bool) -> dict[str, Any]:
    """Trained moons and digits models: error vs a dopri5 reference from the same noise (+ digits FD)."""
    from genlab.metrics import DigitsFD
    from genlab.metrics.uncertainty import data_floor, estimate
    from genlab.training import load_run

    root = _HERE.parent
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for name, rel in TRAINED_RUNS.items():
        run_dir = root / rel
        if not (run_dir / "checkpoints").is_dir():
            meta[name] = {"skipped": f"no trained run at {rel}"}
            say(f"  ! {name}: no run at {rel}, skipped")
            continue
        t_cfg = time.perf_counter()
        loaded = load_run(run_dir)
        fld = loaded.field
        interp = fld.interpolant
        shape = tuple(loaded.components.data_shape)
        ends = log_snr(2, interp)
        t_lo, t_hi = float(ends[0]), float(ends[-1])
        g = torch.Generator().manual_seed(7)
        eps = torch.randn(TRAINED_NOISES, *shape, generator=g, dtype=F64)
        skipped: dict[str, str] = {}
        entries = [e for e in genlab_entries(interp, fld, t_lo, t_hi, ddpm_sigmas, skipped)
                   if e.label in TRAINED_GENLAB and not e.stochastic]
        entries += [e for e in diffusers_entries() + k_diffusion_entries(kd, interp, sigma_min, sigma_max)
                    if e.label in TRAINED_PEERS]
        if search:
            def own(b: int, fld: Field = fld, name: str = name, t_lo: float = t_lo, t_hi: float = t_hi,
                    shape: tuple[int, ...] = shape, step: int = loaded.step) -> Any:
                return run_search(search_log, ("trained", name, b), fld, b, shape=shape, t_lo=t_lo, t_hi=t_hi,
                                  seed=100, model=f"{name} (step {step})", say=say,
                                  settings=TRAINED_SEARCH.get(name))

            entries.append(searched_entry("searched", "evolution+dss preset, this model", own))
            if name == "digits_si":
                gmm_field = Field(ExactGMMNet(make_gmm(64), interp, "velocity"), interp, "velocity")

                def transfer(b: int, gmm_field: Field = gmm_field, t_lo: float = t_lo, t_hi: float = t_hi) -> Any:
                    return run_search(search_log, ("gmm-trig", 64, b), gmm_field, b, shape=(64,), t_lo=t_lo,
                                      t_hi=t_hi, seed=164, model="exact GMM d=64 (digits path: trig)", say=say)

                entries.append(searched_entry("searched (GMM d=64 preset)", "transfer: preset searched on the exact "
                                              "GMM d = 64 field on the same path", transfer))
        runs: list[Run] = []
        for e in entries:
            for b in budgets:
                try:
                    plan = e.plan(b)
                    if plan is None:
                        continue
                    alpha0 = float(interp.schedule.coeffs(plan.grid[:1].to(F64)).alpha[0])
                    x_init = (eps * alpha0).to(torch.float32)
                    t0 = time.perf_counter()
                    res = plan.sampler.sample(fld, x_init, plan.grid)
                    sec = time.perf_counter() - t0
                    ts, te = float(res.grid[0]), float(res.grid[-1])
                    bshape = (-1, *([1] * len(shape)))
                    x_start = res.aux.get("x_start", x_init).to(F64) / beta_at(interp, ts).reshape(bshape)
                    runs.append(Run(e.label, e.family, b, int(res.nfe), plan.steps,
                                    res.x.to(F64) / beta_at(interp, te).reshape(bshape), x_start,
                                    float(sigma_at(interp, ts)), float(sigma_at(interp, te)), sec, False, ts, te))
                except Exception as err:  # noqa: BLE001 - one failing sampler must not stop the benchmark
                    rows.append({"model": name, "label": e.label, "family": e.family, "note": e.note, "budget": b,
                                 "nfe": -1, "error": f"{type(err).__name__}: {err}"[:300]})
                    say(f"  ! {name} {e.label} NFE {b}: {type(err).__name__}: {str(err)[:120]}")
        groups: dict[tuple[float, float], list[Run]] = {}
        for r in runs:
            scale = float((r.x_start * eps).sum() / (eps * eps).sum())
            groups.setdefault((round(r.t_start, 9), round(scale, 9)), []).append(r)
        fd = DigitsFD() if name == "digits_si" else None
        notes = {e.label: e.note for e in entries}
        n_chunks = 4
        for members in groups.values():
            refs = field_reference(fld, members[0].x_start, members[0].t_start, [m.t_end for m in members])
            for m in members:
                ref = refs[m.t_end]
                per = (m.x_end - ref).pow(2).flatten(1).mean(1)
                keep = max(1, math.ceil(0.99 * per.numel()))
                chunks = [c.sort().values[: max(1, math.ceil(0.99 * c.numel()))].mean().sqrt()
                          for c in per.chunk(n_chunks)]
                row = {"model": name, "label": m.label, "family": m.family, "note": notes[m.label],
                       "budget": m.budget, "nfe": m.nfe, "steps": m.steps, "seconds": m.seconds,
                       "rmse": float(per.mean().sqrt()), "median": float(per.sqrt().median()),
                       "rmse99": float(per.sort().values[:keep].mean().sqrt()),
                       "rmse99_chunks": estimate([float(c) for c in chunks]).to_dict()}
                if fd is not None:
                    row["fd"] = fd.score(m.x_end.clamp(-1, 1).to(torch.float32))
                rows.append(row)
        info: dict[str, Any] = {"run": rel, "step": loaded.step, "path": repr(interp), "kind": fld.kind,
                                "t_start": t_lo, "t_end": t_hi, "noises": TRAINED_NOISES,
                                "reference": "genlab dopri5, rtol = atol = 1e-6 (float32 model)",
                                "seconds": time.perf_counter() - t_cfg}
        if fd is not None:
            split = loaded.components.split
            from genlab.training.sampling import reference_data

            train_x = reference_data(split.train)
            held = reference_data(split.test)
            floor = data_floor(lambda x, y, fd=fd: fd.score(x), train_x, held, n=TRAINED_NOISES, draws=3)
            info["fd_floor"] = floor.to_dict()
            info["fd_reference"] = f"held-out test split ({fd.n_reference} digits)"
        meta[name] = info
        say(f"{name}: {len(runs)} runs, {len(groups)} reference groups, {time.perf_counter() - t_cfg:.1f} s")
    return {"rows": rows, "meta": meta}


def searched_summary(rows: list[dict[str, Any]], budgets: Sequence[int], metric: str = "rmse99"
                     ) -> list[dict[str, Any]]:
    """Per (model/d, path, NFE): searched, transfer, best hand-designed genlab, best peer, and the ratios."""
    keys = sorted({(str(r.get("model", f"GMM d={r.get('d')}")), str(r.get("path", "—"))) for r in rows},
                  key=lambda k: (k[0].startswith("GMM"), int(k[0][6:]) if k[0].startswith("GMM d=") else 0, k))
    out = []
    for model, path in keys:
        sub = [r for r in rows if str(r.get("model", f"GMM d={r.get('d')}")) == model
               and str(r.get("path", "—")) == path and r.get(metric) is not None and "error" not in r]
        for b in budgets:
            at = [r for r in sub if r["budget"] == b]
            if not at:
                continue

            def best(cands: list[dict[str, Any]]) -> dict[str, Any] | None:
                cands = [r for r in cands if math.isfinite(r[metric])]
                return min(cands, key=lambda r: r[metric]) if cands else None

            g = best([r for r in at if r["family"] == "genlab"])
            p = best([r for r in at if r["family"] in ("diffusers", "k-diffusion")])
            own = best([r for r in at if r["family"] == "searched" and r["label"] == "searched"])
            tr = best([r for r in at if r["family"] == "searched" and r["label"] != "searched"])
            out.append({"model": model, "path": path, "budget": b, "genlab": g, "peer": p, "searched": own,
                        "transfer": tr,
                        "searched_vs_genlab": own[metric] / g[metric] if own and g else None,
                        "searched_vs_peer": own[metric] / p[metric] if own and p else None,
                        "transfer_vs_genlab": tr[metric] / g[metric] if tr and g else None,
                        "transfer_vs_peer": tr[metric] / p[metric] if tr and p else None})
    return out


# ---------------------------------------------------------------------------------------------------------- running
@dataclass
class Run:
    label: str
    family: str
    budget: int
    nfe: int
    steps: int
    x_end: Tensor  # data units x̃ = x/β at the final level
    x_start: Tensor  # data units at the start level
    sigma_start: float
    sigma_end: float
    seconds: float
    stochastic: bool
    t_start: float = math.nan
    t_end: float = math.nan


def execute(entry: Entry, budget: int, interp: Interpolant, field_: Field, eps: Tensor) -> Run | None:
    plan = entry.plan(budget)
    if plan is None:
        return None
    alpha0 = float(interp.schedule.coeffs(plan.grid[:1].to(F64)).alpha[0])
    x_init = eps * alpha0
    gen = torch.Generator().manual_seed(11)
    t0 = time.perf_counter()
    res = plan.sampler.sample(field_, x_init, plan.grid, generator=gen)
    seconds = time.perf_counter() - t0
    t_start, t_end = float(res.grid[0]), float(res.grid[-1])
    x_start = res.aux.get("x_start", x_init)
    return Run(entry.label, entry.family, budget, int(res.nfe), plan.steps,
               res.x.to(F64) / beta_at(interp, t_end), x_start.to(F64) / beta_at(interp, t_start),
               float(sigma_at(interp, t_start)), float(sigma_at(interp, t_end)), seconds, entry.stochastic,
               t_start, t_end)


def is_stochastic(entry: Entry, budget: int, interp: Interpolant, field_: Field, eps: Tensor) -> bool:
    plan = entry.plan(budget)
    if plan is None:
        return False
    x_init = eps[:16] * float(interp.schedule.coeffs(plan.grid[:1].to(F64)).alpha[0])
    a = plan.sampler.sample(field_, x_init, plan.grid, generator=torch.Generator().manual_seed(1)).x
    b = plan.sampler.sample(field_, x_init, plan.grid, generator=torch.Generator().manual_seed(2)).x
    return not torch.equal(a, b)


def reference_endpoints(gmm: IsotropicGMM, x_start: Tensor, sigma_start: float,
                        sigma_ends: Sequence[float]) -> dict[float, Tensor]:
    """dopri5 (rtol = atol = 1e-10, float64) on d x̃/dσ = ε̂(x̃, σ) from σ_start, read at every σ_end."""
    import torchdiffeq

    ends = sorted({float(s) for s in sigma_ends if float(s) < sigma_start}, reverse=True)
    out = {float(s): x_start for s in sigma_ends if float(s) >= sigma_start}
    if not ends:
        return out

    def rhs(sigma: Tensor, y: Tensor) -> Tensor:
        s = sigma.reshape(1).expand(y.shape[0]).to(F64)
        eps, _ = gmm.posterior(y, s, torch.ones_like(s), want_x1=False)
        return eps

    times = torch.tensor([sigma_start, *ends], dtype=F64)
    states = torchdiffeq.odeint(rhs, x_start.to(F64), times, rtol=1e-10, atol=1e-10, method="dopri5")
    for s, state in zip(ends, states[1:]):
        out[s] = state
    return out


class SlicedW2:
    """Sliced W2 to a fixed target with fixed directions; the target's projections are sorted once.

    Same definition as :func:`genlab.metrics.sliced_wasserstein` (exact 1-D quantile integral for unequal sample
    sizes, averaged over the directions); checked against it when built.
    """

    def __init__(self, target: Tensor, directions: Tensor) -> None:
        self.theta = directions / directions.norm(dim=0, keepdim=True)
        self.target = target
        self.py = torch.sort(target @ self.theta, dim=0).values
        probe = target[: min(300, target.shape[0] // 2)] + 0.1
        mine, theirs = self(probe), float(sliced_wasserstein(probe, target, directions=directions))
        if not math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-12):
            raise RuntimeError(f"cached sliced W2 {mine} differs from genlab.metrics.sliced_wasserstein {theirs}")

    def __call__(self, x: Tensor) -> float:
        px = torch.sort(x.to(F64) @ self.theta, dim=0).values
        n, m = px.shape[0], self.py.shape[0]
        u = torch.cat([torch.arange(1, n + 1, dtype=F64) / n, torch.arange(1, m + 1, dtype=F64) / m])
        u = torch.cat([u.new_zeros(1), torch.sort(u).values])
        widths, mid = u[1:] - u[:-1], 0.5 * (u[1:] + u[:-1])
        ix = torch.clamp((mid * n).floor().long(), max=n - 1)
        iy = torch.clamp((mid * m).floor().long(), max=m - 1)
        cost = (widths[:, None] * (px[ix] - self.py[iy]).pow(2)).sum(dim=0)
        return float(cost.mean().sqrt())


def metrics(x: Tensor, ref: Tensor | None, sw2: SlicedW2) -> dict[str, float | None]:
    sw = sw2(x)
    if ref is None:
        return {"rmse": None, "median": None, "rmse99": None, "sw": sw}
    from genlab.metrics.uncertainty import estimate

    per = (x - ref).pow(2).mean(1)  # per-sample mean square
    keep = max(1, math.ceil(0.99 * per.numel()))
    # uncertainty: RMSE99 on 4 disjoint quarters of the noises (Student-t interval of their mean)
    quarters = [float(c.sort().values[: max(1, math.ceil(0.99 * c.numel()))].mean().sqrt()) for c in per.chunk(4)]
    return {
        "rmse": float(per.mean().sqrt()),
        "median": float(per.sqrt().median()),
        "rmse99": float(per.sort().values[:keep].mean().sqrt()),
        "rmse99_chunks": estimate(quarters).to_dict(),
        "sw": sw,
    }


# ---------------------------------------------------------------------------------------------------------- overhead
def overhead(kd: Any, repeats: int = 5, steps: int = 50) -> list[dict[str, Any]]:
    """Wall time per model call of each sampler loop with a trivial model (ε̂ = x/2), batch 4096, d = 64, float32."""
    import diffusers

    interp, _ = make_paths()["vp"]
    x0 = torch.randn(4096, 64, generator=torch.Generator().manual_seed(0))
    field_ = Field(lambda x, t: 0.5 * x, interp, "noise")
    t_lo, t_hi = 0.0, 1 - 1e-3

    def best_of(fn: Callable[[], int]) -> tuple[float, int]:
        times, nfe = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            nfe = fn()
            times.append(time.perf_counter() - t0)
        return min(times), nfe

    def genlab_run(name: str, **opts: Any) -> Callable[[], int]:
        smp = get_sampler(name, **opts)

        def run() -> int:
            grid = log_snr(steps, interp, t_start=t_lo, t_end=t_hi)
            return smp.sample(field_, x0, grid).nfe

        return run

    def diffusers_run(cls_name: str, **cfg: Any) -> Callable[[], int]:
        cls = getattr(diffusers, cls_name)

        def run() -> int:
            sched = cls(**DDPM, **cfg)
            sched.set_timesteps(steps)
            x = x0 * sched.init_noise_sigma
            for ts in sched.timesteps:
                x = sched.step(0.5 * sched.scale_model_input(x, ts), ts, x).prev_sample
            return len(sched.timesteps)

        return run

    def kd_run(fn: str) -> Callable[[], int]:
        func = getattr(kd, f"sample_{fn}")
        calls = [0]

        def model(x: Tensor, sigma: Tensor) -> Tensor:
            calls[0] += 1
            return 0.5 * x

        def run() -> int:
            calls[0] = 0
            sig = kd.get_sigmas_karras(steps, 0.01, 157.0, rho=7.0)
            func(model, x0 * sig[0], sig, disable=True)
            return calls[0]

        return run

    pairs: list[tuple[str, Callable[[], int], list[tuple[str, Callable[[], int]]]]] = [
        ("ddim", genlab_run("ddim"), [("diffusers DDIM", diffusers_run("DDIMScheduler", clip_sample=False))]),
        ("dpmpp_2m", genlab_run("dpmpp_2m"), [("diffusers DPM++2M", diffusers_run("DPMSolverMultistepScheduler")),
                                               ("k-diffusion dpmpp_2m", kd_run("dpmpp_2m"))]),
        ("dpmpp_3m", genlab_run("dpmpp_3m"), [("diffusers DPM++3M",
                                               diffusers_run("DPMSolverMultistepScheduler", solver_order=3))]),
        ("deis_logrho", genlab_run("deis_logrho"), [("diffusers DEIS-2", diffusers_run("DEISMultistepScheduler"))]),
        ("euler", genlab_run("euler"), [("diffusers Euler", diffusers_run("EulerDiscreteScheduler")),
                                         ("k-diffusion euler", kd_run("euler"))]),
        ("heun", genlab_run("heun"), [("diffusers Heun", diffusers_run("HeunDiscreteScheduler")),
                                       ("k-diffusion heun", kd_run("heun"))]),
        ("deis_tab", genlab_run("deis_tab"), [("k-diffusion lms", kd_run("lms"))]),
    ]
    rows = []
    for name, g_run, peers in pairs:
        if name not in SAMPLERS:
            continue
        g_time, g_nfe = best_of(g_run)
        for peer_label, p_run in peers:
            p_time, p_nfe = best_of(p_run)
            g_ms, p_ms = 1e3 * g_time / g_nfe, 1e3 * p_time / p_nfe
            rows.append({"genlab": name, "peer": peer_label, "genlab_ms_per_nfe": g_ms, "peer_ms_per_nfe": p_ms,
                         "genlab_nfe": g_nfe, "peer_nfe": p_nfe, "ratio": g_ms / p_ms})
    return rows


# ---------------------------------------------------------------------------------------------------------- report
def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if v == 0:
        return "0"
    if abs(v) >= 100 or abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.{digits}g}"


def _nfe_note(r: dict[str, Any]) -> str:
    return "" if r["nfe"] == r["budget"] else f" ({r['nfe']} NFE)"


def best_rows(rows: list[dict[str, Any]], family_is_genlab: bool, budget: int, metric: str = "median"
              ) -> dict[str, Any] | None:
    cands = [r for r in rows if r["family"] in ("genlab", "diffusers", "k-diffusion")
             and (r["family"] == "genlab") == family_is_genlab and r["budget"] == budget
             and r.get(metric) is not None and math.isfinite(r[metric])]
    return min(cands, key=lambda r: r[metric]) if cands else None


def searched_markdown(report: dict[str, Any]) -> list[str]:
    """The searched-solver sections (issue 11): goal table, transfer, search cost, trained models."""
    summ = report.get("searched_summary") or []
    if not summ and not report.get("trained", {}).get("rows"):
        return []
    meta = report["meta"]
    labels = {r["label"] for r in report["results"]} | {r["label"] for r in report.get("trained", {}).get("rows", [])}
    reg = {k: k in labels for k in meta.get("part_a_registered", {})}
    missing = [k for k, v in reg.items() if not v]
    st = report["search"]["settings"]
    lines = [
        "", "## Searched solvers (issue 11): searched vs best hand-designed genlab vs best peer", "",
        (f"* Search: `genlab.samplers.search.search_solver(method='{st['method']}')` — AutoDiffusion-style evolution "
         f"over grids and per-step orders (population {st['evolution_options']['population']}, "
         f"{st['evolution_options']['epochs']} epochs), then the differentiable NeuralSolver/DSS search "
         f"({st['dss_options']['iterations']} Adam steps, batch {st['dss_options']['batch']}), from DPM-Solver++(2M) "
         f"on the log-SNR grid; teacher {st['teacher']} with {st['teacher_steps']} log-SNR steps; "
         f"{st['noises']} search noises (a quarter held out for selection), drawn with other seeds than the "
         "table's noises, so every number below is measured on noises the search never saw."),
        ("* Same ends as the genlab rows (GMM: the DDPM σ range; trained models: the log-SNR grid's default ends); "
         "error = RMSE without the worst 1 % against the dopri5 reference from the same start (as above)."),
        ("* Part A's samplers: " + (", ".join(f"`{k}` in the tables (a genlab row)" for k, v in reg.items() if v)
                                    or "none in the tables")
         + ("; not in the registry when this run built its tables (no rows): " + ", ".join(f"`{k}`" for k in missing)
            if missing else "") + "."),
        "",
        ("| model / d | path | NFE | searched | best hand-designed genlab | best peer | searched / genlab | "
         "searched / peer | transfer | transfer / genlab | transfer / peer |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "—"
        ci = r.get("rmse99_chunks")
        extra = f" ± {0.5 * (ci['high'] - ci['low']):.2g}" if ci and ci.get("n", 0) > 1 else ""
        return f"{_fmt(r['rmse99'])}{extra} ({r['label']}{_nfe_note(r)})"

    def ratio(v: float | None) -> str:
        return "—" if v is None else (f"**{v:.2f}**" if v <= 0.5 else f"{v:.2f}")

    for s in summ:
        lines.append(f"| {s['model']} | {s['path']} | {s['budget']} | {cell(s['searched'])} | {cell(s['genlab'])} | "
                     f"{cell(s['peer'])} | {ratio(s['searched_vs_genlab'])} | {ratio(s['searched_vs_peer'])} | "
                     f"{cell(s['transfer'])} | {ratio(s['transfer_vs_genlab'])} | {ratio(s['transfer_vs_peer'])} |")
    goal = [x for x in summ if 5 <= x["budget"] <= 8 and x["searched_vs_genlab"] is not None]
    both = [x for x in goal if x["searched_vs_genlab"] <= 0.5 and (x["searched_vs_peer"] or 9) <= 0.5]
    better = [x for x in goal if x["searched_vs_genlab"] < 1.0]
    tr = [x for x in summ if 5 <= x["budget"] <= 8 and x["transfer_vs_genlab"] is not None]
    lines += ["", (f"**Findings.** At NFE 5–8 the searched solver meets the goal (≤ 0.5× the best hand-designed genlab "
                   f"sampler *and* the best peer) in {len(both)} of {len(goal)} cells, and beats the best hand-designed "
                   f"sampler in {len(better)} of {len(goal)}: "
                   + ", ".join(f"{x['model']} {x['path'] if x['path'] != '—' else ''} NFE {x['budget']}".replace("  ", " ")
                               for x in both)
                   + ". Transfer (a preset used on another model) beats the best hand-designed sampler in "
                   f"{sum(x['transfer_vs_genlab'] < 1.0 for x in tr)} of {len(tr)} cells. Trims for CPU: NFE "
                   f"{meta['nfe']} on the GMM fields (15/20/50 dropped), {meta['noises']} noises (not 512), "
                   "NFE 5 and 8 on the trained models, no overhead timing, a 1,200-step digits model (the "
                   "documented 2,500-step run was not kept), lighter search on the digits U-Net.")]
    lines += ["", ("Bold ratio: the goal (≤ 0.5×) is met. Cells show RMSE99 ± the half-width of the 95 % interval of "
                   "the mean RMSE99 over 4 disjoint quarters of the noises (genlab.metrics.uncertainty.estimate)."), "",
              "### Search cost", "",
              ("| searched on | NFE | held-out error of the start (DPM++2M) | after the search | wall s | NFE spent | "
               "noises / epochs / DSS steps |"),
              "|---|---|---|---|---|---|---|"]
    for r in report["search"]["searches"]:
        cfg = r.get("settings", {})
        lines.append(f"| {r['model']} | {r['nfe']} | {_fmt(r['start_error'])} | {_fmt(r['error'])} | "
                     f"{r['seconds']:.0f} | {r['search_nfe']} | {cfg.get('noises')} / "
                     f"{cfg.get('evolution_options', {}).get('epochs')} / "
                     f"{cfg.get('dss_options', {}).get('iterations')} |")
    lines.append("")
    lines.append("NFE spent counts batched network calls (teacher, every candidate, every training roll-out; the "
                 "backward passes of the differentiable search are extra compute, not counted). Wall times are on a "
                 "shared, heavily loaded 2-core machine.")
    trained = report.get("trained", {})
    for name, info in trained.get("meta", {}).items():
        lines += ["", f"### Trained model `{name}`", ""]
        if "skipped" in info:
            lines.append(f"Skipped: {info['skipped']}.")
            continue
        lines.append(f"Run `{info['run']}` (step {info['step']}), {info['kind']} field on `{info['path']}`, grid ends "
                     f"t ∈ [{info['t_start']:.4g}, {info['t_end']:.4g}], {info['noises']} noises; reference "
                     f"{info['reference']}.")
        if "fd_floor" in info:
            fl = info["fd_floor"]
            lines.append(f"Digits FD against the {info['fd_reference']} (N = {info['noises']}; samples clamped to "
                         f"[−1, 1]): data floor {fl['mean']:.3g} ± {0.5 * (fl['high'] - fl['low']):.2g} (3 disjoint "
                         "training subsets of the same size).")
        rows = [r for r in trained["rows"] if r["model"] == name]
        budgets = sorted({r["budget"] for r in rows})
        has_fd = any("fd" in r for r in rows)
        head = "| sampler | family | " + " | ".join(f"NFE {b} RMSE99 / median" + (" / FD" if has_fd else "")
                                                  for b in budgets) + " |"
        lines += ["", head, "|---|---|" + "---|" * len(budgets)]
        for lab in dict.fromkeys(r["label"] for r in rows):
            cells = []
            fam = next(r["family"] for r in rows if r["label"] == lab)
            for b in budgets:
                r = next((x for x in rows if x["label"] == lab and x["budget"] == b), None)
                if r is None:
                    cells.append("—")
                elif "error" in r:
                    cells.append("err")
                else:
                    txt = f"{_fmt(r['rmse99'])} / {_fmt(r['median'])}" + (f" / {r['fd']:.3g}" if has_fd else "")
                    cells.append(txt + ("" if r["nfe"] == b else f" ({r['nfe']})"))
            lines.append(f"| {lab} | {fam} | " + " | ".join(cells) + " |")
        errs = [r for r in rows if "error" in r]
        for r in errs:
            lines.append(f"\n* `{r['label']}` NFE {r['budget']}: {r['error']}")
    return lines


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    meta = report["meta"]
    rows = report["results"]
    lines = [
        "# Sampler benchmark: genlab vs diffusers vs k-diffusion (exact Gaussian-mixture PF-ODE)",
        "",
        (f"Generated by `{meta.get('command') or 'python experiments/bench_samplers.py'}"
         f"{' --quick' if meta['quick'] and 'command' not in meta else ''}` "
         f"({meta['date']}, {meta['seconds_total']:.0f} s). torch {meta['torch']}, diffusers {meta['diffusers']}, "
         f"k-diffusion {meta['k_diffusion']}; **torch threads = {meta['threads']}**, denormals flushed, float64."),
        "",
        (f"* Data: (1/8) Σ N(μ_k, {COMPONENT_VAR}·I), μ_k ~ N(0, I_d), d ∈ {meta['dims']}; {meta['noises']} fixed "
         "initial noises shared by every sampler; paths `vp` (diffusers' DDPM schedule as a genlab "
         "DiscreteVPSchedule, ε-field) and `linear` (rectified flow, velocity field), same exact field."),
        (f"* Noise range σ ∈ [{meta['sigma_min']:.4g}, {meta['sigma_max']:.4g}]. Reference: dopri5, rtol = atol = "
         "1e-10, float64, from each sampler's own start state/level to its own final level (DEIS: σ_min)."),
        ("* Reference check vs genlab `dopri5` (rtol 1e-10) on the linear path: max |Δ| = "
         + ", ".join(f"d={k}: {_fmt(v['max_abs_diff'])} ({v['nfe']} NFE)" for k, v in meta["reference_check"].items())
         + "."),
        ("* Metrics, in data units (x̃ = x/β at the final level): median per-sample RMS endpoint error, RMSE without "
         "the worst 1 % of samples (RMSE99: one basin switch among 512 noises adds ≈ 0.1 to the plain RMSE) and "
         "RMSE. Main tables: `median / RMSE99`; RMSE and SW (sliced W2 to "
         f"{N_TARGET} target samples; floor = reference endpoints: "
         + ", ".join(f"d={k}: {_fmt(v)}" for k, v in meta["sw_floor"].items()) + ") in the collapsed tables."),
        ("* NFE matching: each sampler uses the step count that hits the budget; `x (n)` means the budget could not "
         "be hit and n evaluations were used. `sde` = stochastic sampler (no ODE endpoint; SW only)."),
        f"* Peers: {meta['peer_shims']}",
        ("* The peers do not depend on genlab's path (the adapters re-time the same field to their own noise "
         "levels), so their rows are identical on `vp` and `linear`; genlab samplers discretise the path they run on."),
        ("* `(ddpm grid)` rows: genlab exponential integrators on the peers' grid (diffusers' linspace timesteps + "
         "final σ = 0) — separates the solver from the grid."),
    ]
    lines += searched_markdown(report)
    for metric, title in (("rmse99", ("RMSE without the worst 1 % (robust to a few basin switches, not to a heavy "
                                     "tail)")),
                          ("median", "median per-sample error")):
        lines += [
            "", f"## Best genlab vs best peer at NFE 5 and 10, ranked by {title}", "",
            ("| d | path | NFE | best genlab | RMSE99 | median | RMSE | SW | best peer | RMSE99 | median | RMSE | SW | "
             f"genlab/peer ({'RMSE99' if metric == 'rmse99' else 'median'}) |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in report["summary"]:
            g, p = s[f"genlab_{metric}"], s[f"peer_{metric}"]
            if g is None or p is None:
                continue
            lines.append(
                f"| {s['d']} | {s['path']} | {s['budget']} | {g['label']}{_nfe_note(g)} | {_fmt(g['rmse99'])} | "
                f"{_fmt(g['median'])} | {_fmt(g['rmse'])} | {_fmt(g['sw'])} | {p['label']}{_nfe_note(p)} | "
                f"{_fmt(p['rmse99'])} | {_fmt(p['median'])} | {_fmt(p['rmse'])} | {_fmt(p['sw'])} | "
                f"**{g[metric] / p[metric]:.2f}** |")
    lines += ["", "## Sampler overhead per network evaluation (trivial model, batch 4096, d = 64, float32, 50 steps)",
              ""]
    if not report["overhead"]:
        lines.append("Not timed in this run (`--skip-overhead`: wall-clock timings on a heavily loaded shared machine "
                     "are meaningless); the previous timed run of this script is in the git history of this file.")
    else:
        lines += ["| genlab | ms/NFE | peer | ms/NFE | genlab / peer |", "|---|---|---|---|---|"]
    for o in report["overhead"]:
        lines.append(f"| {o['genlab']} | {o['genlab_ms_per_nfe']:.3f} | {o['peer']} | {o['peer_ms_per_nfe']:.3f} | "
                     f"{o['ratio']:.2f} |")
    budgets = meta["nfe"]
    for d in meta["dims"]:
        for path_name in ("vp", "linear"):
            sub = [r for r in rows if r["d"] == d and r["path"] == path_name]
            if not sub:
                continue
            labels = list(dict.fromkeys(r["label"] for r in sub))
            notes = {r["label"]: r["note"] for r in sub}
            best = {}
            for b in (5, 10):
                for fam in (True, False):
                    br = best_rows(sub, fam, b, "rmse99")
                    if br is not None:
                        best[(br["label"], b)] = True
            for metric, title, collapsed in (("median", ("median per-sample error / RMSE without the worst 1 % "
                                                        "(bold: best genlab and best peer by the latter at NFE 5, 10)"),
                                              False),
                                             ("rmse", "RMSE", True), ("sw", "sliced W2 to the target", True)):
                head = f"### d = {d}, {path_name} path: {title}"
                if collapsed:
                    lines += ["", f"<details><summary>d = {d}, {path_name} path: {title}</summary>", ""]
                else:
                    lines += ["", head, ""]
                lines.append("| sampler | grid / config | " + " | ".join(f"NFE {b}" for b in budgets) + " |")
                lines.append("|---|---|" + "---|" * len(budgets))
                for lab in labels:
                    cells = []
                    for b in budgets:
                        r = next((x for x in sub if x["label"] == lab and x["budget"] == b), None)
                        if r is None:
                            cells.append("—")
                            continue
                        if "error" in r:
                            cells.append("err")
                            continue
                        v = r.get(metric)
                        if v is None:
                            cells.append("sde")
                            continue
                        txt = _fmt(v) if metric != "median" else f"{_fmt(v)} / {_fmt(r['rmse99'])}"
                        if r["nfe"] != b:
                            txt += f" ({r['nfe']})"
                        if metric == "median" and best.get((lab, b)):
                            txt = f"**{txt}**"
                        cells.append(txt)
                    lines.append(f"| {lab} | {notes[lab]} | " + " | ".join(cells) + " |")
                if collapsed:
                    lines += ["", "</details>"]
    if report["meta"].get("skipped"):
        lines += ["", "## genlab samplers not in the table", ""]
        for k, v in sorted(report["meta"]["skipped"].items()):
            lines.append(f"* `{k}`: {v}")
    lines.append("")
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines))


def write_plot(path: Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, rows = report["meta"], report["results"]
    dims = meta["dims"]
    fig, axes = plt.subplots(2, len(dims), figsize=(5.2 * len(dims), 8.4), squeeze=False)
    for j, d in enumerate(dims):
        for i, path_name in enumerate(("vp", "linear")):
            ax = axes[i][j]
            sub = [r for r in rows if r["d"] == d and r["path"] == path_name and r.get("median") is not None]
            ref_budget = 10 if 10 in meta["nfe"] else meta["nfe"][len(meta["nfe"]) // 2]
            for fam, style in (("genlab", "-"), ("peer", "--")):
                labs = {r["label"] for r in sub if (r["family"] == "genlab") == (fam == "genlab")}
                score = {lab: next((r["median"] for r in sub if r["label"] == lab and r["budget"] == ref_budget),
                                   math.inf) for lab in labs}
                for lab in sorted(labs, key=lambda k: score[k])[:4]:
                    pts = sorted((r["nfe"], r["median"]) for r in sub if r["label"] == lab)
                    ax.loglog([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=lab)
            ax.set_title(f"d = {d}, {path_name} path")
            ax.set_xlabel("NFE")
            ax.set_ylabel("median per-sample endpoint error")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Exact GMM PF-ODE: best 4 genlab (solid) vs best 4 peers (dashed)", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------------- main
def run(*, quick: bool = False, out: Path | str = _HERE / "results", noises: int | None = None,
        dims: Sequence[int] | None = None, budgets: Sequence[int] | None = None, skip_overhead: bool = False,
        verbose: bool = True, search: bool = True, trained: bool = True,
        trained_budgets: Sequence[int] | None = None, ship_presets: bool = False) -> dict[str, Any]:
    """Run the benchmark and write ``samplers{_quick}.{json,md,png}`` under ``out``."""
    import diffusers

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    dims = tuple(dims or (QUICK_DIMS if quick else FULL_DIMS))
    budgets = tuple(budgets or (QUICK_NFE if quick else FULL_NFE))
    n_noise = int(noises or (128 if quick else 512))
    say = print if verbose else (lambda *a, **k: None)
    kd_peer = load_k_diffusion_sampling()
    say(f"threads={torch.get_num_threads()} (torch.set_num_threads(1)); k-diffusion {kd_peer.version} loaded with "
        f"shims: {'; '.join(kd_peer.shims) or 'none'}")
    kd = kd_peer.module
    paths = make_paths()
    ddpm_interp = paths["vp"][0]
    sigma_max = float(sigma_at(ddpm_interp, 0.0))
    sigma_min = float(sigma_at(ddpm_interp, 1 - 1e-3))
    abar = ddpm_interp.schedule.alphas_cumprod.to(F64)
    ddpm_sigmas = ((1 - abar) / abar).sqrt()  # σ of every training timestep n = 0..T-1
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    reference_check: dict[str, Any] = {}
    sw_floor: dict[str, float] = {}
    search_log = SearchLog({}, [])
    for d in dims:
        gmm = make_gmm(d)
        eps = torch.randn(n_noise, d, generator=torch.Generator().manual_seed(7 + d), dtype=F64)
        target = gmm.sample(N_TARGET, torch.Generator().manual_seed(99 + d))
        directions = torch.randn(d, N_DIRECTIONS, generator=torch.Generator().manual_seed(5 + d), dtype=F64)
        sw2 = SlicedW2(target, directions)
        for path_name, (interp, kind) in paths.items():
            t_cfg = time.perf_counter()
            field_ = Field(ExactGMMNet(gmm, interp, kind), interp, kind)
            t_lo = float(t_of_sigma(interp, torch.tensor([sigma_max]))[0])
            t_hi = float(t_of_sigma(interp, torch.tensor([sigma_min]))[0])
            entries = (genlab_entries(interp, field_, t_lo, t_hi, ddpm_sigmas, skipped) + diffusers_entries()
                       + k_diffusion_entries(kd, interp, sigma_min, sigma_max))
            if search:
                entries += gmm_searched_entries(search_log, d, path_name, field_, t_lo, t_hi, say)
            for e in entries:
                if e.stochastic:
                    e.stochastic = is_stochastic(e, min(budgets), interp, field_, eps)
            runs: list[Run] = []
            for e in entries:
                for b in budgets:
                    try:
                        r = execute(e, b, interp, field_, eps)
                    except Exception as err:  # noqa: BLE001 - one failing sampler must not stop the benchmark
                        results.append({"d": d, "path": path_name, "label": e.label, "family": e.family,
                                        "note": e.note, "budget": b, "nfe": -1, "error": f"{type(err).__name__}: "
                                                                                          f"{err}"[:300]})
                        say(f"  ! {e.label} NFE {b}: {type(err).__name__}: {str(err)[:120]}")
                        continue
                    if r is not None:
                        runs.append(r)
            # references: group by (start level, start state scale)
            groups: dict[tuple[float, float], list[Run]] = {}
            for r in runs:
                scale = float((r.x_start * eps).sum() / (eps * eps).sum())
                groups.setdefault((round(r.sigma_start, 9), round(scale, 9)), []).append(r)
            notes = {e.label: e.note for e in entries}
            for members in groups.values():
                det = [m for m in members if not m.stochastic]
                refs = reference_endpoints(gmm, members[0].x_start, members[0].sigma_start,
                                           [m.sigma_end for m in det]) if det else {}
                for m in members:
                    ref = None if m.stochastic else refs[float(m.sigma_end)]
                    met = metrics(m.x_end, ref, sw2)
                    results.append({"d": d, "path": path_name, "label": m.label, "family": m.family,
                                    "note": notes[m.label], "budget": m.budget, "nfe": m.nfe, "steps": m.steps,
                                    "sigma_start": m.sigma_start, "sigma_end": m.sigma_end, "seconds": m.seconds,
                                    "stochastic": m.stochastic, **met})
            if path_name == "linear":
                ref0 = reference_endpoints(gmm, eps * sigma_max, sigma_max, [sigma_min, 0.0])
                dop = get_sampler("dopri5", rtol=1e-10, atol=1e-10)
                res = dop.sample(field_, eps * float(interp.schedule.coeffs(torch.tensor([t_lo], dtype=F64)).alpha[0]),
                                 torch.tensor([t_lo, t_hi], dtype=F64))
                diff = float((res.x / beta_at(interp, t_hi) - ref0[sigma_min]).abs().max())
                reference_check[str(d)] = {"max_abs_diff": diff, "nfe": res.nfe}
                sw_floor[str(d)] = sw2(ref0[0.0])
            say(f"d={d} {path_name}: {len(runs)} runs, {len(groups)} reference IVPs, "
                f"{time.perf_counter() - t_cfg:.1f} s")
    summary = []
    for d in dims:
        for path_name in paths:
            sub = [r for r in results if r["d"] == d and r["path"] == path_name]
            for b in (5, 10):
                if b in budgets:
                    summary.append({"d": d, "path": path_name, "budget": b,
                                    **{f"{fam}_{m}": best_rows(sub, fam == "genlab", b, m)
                                       for fam in ("genlab", "peer") for m in ("rmse99", "median")}})
    trained_part = (trained_section(kd, say, search_log, sigma_min, sigma_max, ddpm_sigmas,
                                    tuple(trained_budgets or TRAINED_NFE), search)
                    if trained else {"rows": [], "meta": {}})
    shipped = []
    if ship_presets:  # the presets of the shipped configs, searched on their trained runs, into the package
        folder = _HERE.parent / "genlab" / "assets" / "presets"
        for key, preset in search_log.presets.items():
            if key[0] == "trained":
                shipped.append(str(preset.save(folder / f"{key[1]}_nfe{key[2]}.json").relative_to(_HERE.parent)))
    over = [] if skip_overhead else overhead(kd)
    report = {
        "meta": {
            "quick": quick, "dims": list(dims), "nfe": list(budgets), "noises": n_noise, "threads":
                torch.get_num_threads(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "k_diffusion": kd_peer.version, "peer_shims": "k-diffusion: " + ("; ".join(kd_peer.shims) or "none"),
            "python": platform.python_version(), "sigma_min": sigma_min, "sigma_max": sigma_max,
            "gmm": {"components": N_COMPONENTS, "component_var": COMPONENT_VAR, "means": "N(0, I_d), seed 1000+d"},
            "reference_check": reference_check, "sw_floor": sw_floor, "skipped": skipped,
            "date": time.strftime("%Y-%m-%d %H:%M"), "seconds_total": time.perf_counter() - start,
            "part_a_registered": {n: n in SAMPLERS for n in ("unipc", "dpm_solver_v3")},
            "shipped_presets": shipped,
            "command": "python experiments/bench_samplers.py " + " ".join(sys.argv[1:]),
        },
        "results": results,
        "summary": summary,
        "searched_summary": searched_summary(results, budgets) + searched_summary(
            trained_part["rows"], tuple(trained_budgets or TRAINED_NFE)),
        "trained": trained_part,
        "search": {"settings": SEARCH, "searches": search_log.rows,
                   "presets": {"/".join(str(k) for k in key): p.to_dict() for key, p in search_log.presets.items()}},
        "overhead": over,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "samplers_quick" if quick else "samplers"
    with atomic_write(out / f"{stem}.json", "w") as fh:
        json.dump(_rounded(report), fh, indent=1, default=float)
    write_markdown(out / f"{stem}.md", report)
    write_plot(out / f"{stem}.png", report)
    for suffix in ("json", "md", "png"):
        (out / f"{stem}.{suffix}").chmod(0o644)
    say(f"wrote {out / stem}.{{json,md,png}} in {report['meta']['seconds_total']:.0f} s")
    return report


def _rounded(obj: Any) -> Any:
    """Floats to 6 significant digits (keeps the JSON small; the measurements are not more precise)."""
    if isinstance(obj, float):
        return float(f"{obj:.6g}") if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_samplers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="d = 2, 16; NFE 5, 10, 20; 128 noises")
    parser.add_argument("--out", default=str(_HERE / "results"), help="output folder")
    parser.add_argument("--noises", type=int, default=None, help="number of initial noises (default 512 / 128)")
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="dimensions (override)")
    parser.add_argument("--nfe", type=int, nargs="+", default=None, help="NFE budgets (override)")
    parser.add_argument("--skip-overhead", action="store_true", help="skip the per-step overhead timing")
    parser.add_argument("--rewrite", default=None, metavar="JSON",
                        help="only rewrite the Markdown and PNG next to an existing results JSON")
    parser.add_argument("--no-search", action="store_true", help="skip the searched solvers")
    parser.add_argument("--ship-presets", action="store_true",
                        help="write the trained models' presets to genlab/assets/presets/<config>_nfe<N>.json")
    parser.add_argument("--no-trained", action="store_true", help="skip the trained moons/digits models")
    parser.add_argument("--trained-nfe", type=int, nargs="+", default=None,
                        help=f"NFE budgets on the trained models (default {list(TRAINED_NFE)})")
    args = parser.parse_args(argv)
    if args.rewrite:
        src = Path(args.rewrite)
        report = json.loads(src.read_text())
        write_markdown(src.with_suffix(".md"), report)
        write_plot(src.with_suffix(".png"), report)
        return 0
    run(quick=args.quick, out=args.out, noises=args.noises, dims=args.dims, budgets=args.nfe,
        skip_overhead=args.skip_overhead, search=not args.no_search, trained=not args.no_trained,
        trained_budgets=args.trained_nfe, ship_presets=args.ship_presets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
