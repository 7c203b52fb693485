"""Inverse-problem methods on the MCGdiff Gaussian-mixture protocol against the exact posterior: every genlab method
at its defaults next to deepinv's DPS, ΠGDM, moment matching, DDRM and DiffPIR at theirs and tuned on held-out
problem seeds (issue 13; also ``genlab bench inverse``).

Protocol (Cardoso et al., ICLR'24; ``reference/inverse.md`` §5.1): 25 unit-covariance components on the grid
{−16, −8, 0, 8, 16}² tiled d/2 times, weights ∝ N(0, 1)², ``A = U diag(s) V[:d_y]`` with sorted uniform singular
values, σ = U(0, 1)·max(s), ``y = A x* + σn``; d ∈ {8, 80}, d_y ∈ {1, 2, 4}. The prior is exact
(:class:`genlab.inverse.GMMDenoiser` on the VP path, linear β ∈ [0.1, 20]); the data are not rescaled
(per-coordinate prior std ≈ 8).

Seeds: benchmark problems use seeds 0..S−1 (``--seeds``); every tuned setting (deepinv's weights, λ, η; the genlab
defaults' record) is chosen on the held-out problem seeds 100–102 (``--tune``), never on the benchmark seeds.

Metric: sliced W1 (100 random directions) between each method's samples and as many fresh exact-posterior samples;
per cell, the mean over seeds with its Student-t 95 % interval (:func:`genlab.metrics.estimate`), the median, and
the floor (two exact sample sets, same statistic) with a Welch verdict (:func:`genlab.metrics.compare`).

Budget: at most ``--nfe`` (100) network evaluations per sample, measured (DiffPIR's ``data_var="auto"`` reads τ²
with one evaluation on an auxiliary batch, so it runs 99 steps; STSL with K = 5 inner iterations costs
10 NFE per step, so 10 steps). deepinv 0.5.0 runs on the same exact denoiser embedded in its [0, 1] image
convention (``x_img = (x/S + 1)/2``, S = 20) with the operator as a ``DecomposablePhysics`` (its exact SVD, the most
favourable form for ΠGDM, DDRM and DiffPIR) and Gaussian noise σ/(2S).

Writes ``inverse_gmm.{json,md,png}`` (benchmark) or ``inverse_gmm_tuning.{json,md}`` (``--tune``) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from genlab.interpolants.presets import VPDiffusion
from genlab.inverse import DiffusionPrior, LatentPrior, solve, testing
from genlab.metrics import compare, estimate
from genlab.models import LinearAutoEncoder
from genlab.utils import atomic_write

EMBED_SCALE = 20.0
HELD_OUT = (100, 101, 102)
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python experiments/bench_inverse_gmm.py"


@dataclass
class Spec:
    """One genlab configuration."""

    label: str
    method: str
    steps: int
    latent: bool = False
    options: dict = field(default_factory=dict)


def genlab_defaults(nfe: int) -> list[Spec]:
    """Every registered genlab method at its defaults, within ``nfe`` evaluations."""
    return [
        Spec("ΠGDM", "pigdm", nfe),
        Spec("moment matching", "moment_matching", nfe),
        Spec("DiffPIR", "diffpir", nfe - 1),
        Spec("DDRM", "ddrm", nfe),
        Spec("DPS", "dps", nfe),
        Spec("DDS", "dds", nfe),
        Spec("Dreamguider†", "dreamguider", nfe),
        Spec("STSL-px", "stsl", max(1, nfe // 10), latent=True),
    ]


def genlab_tuning_grid(nfe: int) -> list[Spec]:
    """Candidate default settings of the genlab methods (held-out seeds only)."""
    out = [
        Spec("ΠGDM paper-update r²(τ²=1)", "pigdm", nfe, options={"data_var": 1.0}),
        Spec("ΠGDM paper-update r²(auto)", "pigdm", nfe - 1, options={"data_var": "auto"}),
        Spec("ΠGDM score r²(τ²=1)", "pigdm", nfe, options={"data_var": 1.0, "faithful": False}),
        Spec("ΠGDM score r²(auto)", "pigdm", nfe - 1, options={"data_var": "auto", "faithful": False}),
        Spec("MM cg=8", "moment_matching", nfe),
        Spec("DiffPIR ρ=tweedie η=√0.1", "diffpir", nfe - 1),
        Spec("DiffPIR ρ=tweedie η=0", "diffpir", nfe - 1, options={"eta": 0.0}),
        Spec("DiffPIR ρ=paper λ=7", "diffpir", nfe, options={"rho": "paper"}),
        Spec("DDRM η=0.85", "ddrm", nfe),
        Spec("DDRM η=0.5", "ddrm", nfe, options={"eta": 0.5}),
        Spec("DDRM η=0", "ddrm", nfe, options={"eta": 0.0}),
        Spec("DDS γ=1", "dds", nfe),
        Spec("DDS γ=1/σ²", "dds", nfe, options={"gamma": "1/sigma2"}),
    ]
    out += [Spec(f"DPS ζ'={z:g}", "dps", nfe, options={"zeta": z}) for z in (0.1, 0.25, 0.5)]
    return out


#: deepinv methods: (default keyword arguments, tuning grid over held-out seeds).
DEEPINV: dict[str, tuple[dict, list[dict]]] = {
    "DPS": ({"weight": 1.0}, [{"weight": w} for w in (1.0, 3.0, 10.0, 30.0, 100.0)]),
    "ΠGDM": ({"weight": 1.0}, [{"weight": w} for w in (0.3, 1.0, 3.0)]),
    "MM": ({"weight": 1.0}, [{"weight": w} for w in (1.0, 3.0)]),
    "DDRM": ({"eta": 0.85, "etab": 1.0}, [{"eta": e, "etab": 1.0} for e in (0.0, 0.5, 0.85)]),
    "DiffPIR": ({"lambda_": 7.0, "zeta": 0.1},
                [{"lambda_": 1.0, "zeta": 0.1}, {"lambda_": 7.0, "zeta": 0.1}, {"lambda_": 20.0, "zeta": 0.1},
                 {"lambda_": 7.0, "zeta": 0.5}]),
}


def _opts(spec: Spec, gp: testing.GMMInverseProblem) -> dict:
    opts = dict(spec.options)
    if opts.get("gamma") == "1/sigma2":
        opts["gamma"] = 1.0 / gp.problem.sigma**2
    return opts


def run_genlab(spec: Spec, gp: testing.GMMInverseProblem, prior: DiffusionPrior, latent: LatentPrior, n: int,
               seed: int) -> tuple[torch.Tensor, dict]:
    """One genlab solve; returns (samples, cost dict)."""
    opts = _opts(spec, gp)
    eta = opts.pop("eta", None)
    res = solve(gp.problem, latent if spec.latent else prior, spec.method, steps=spec.steps, n_samples=n, seed=seed,
                eta=eta, **opts)
    return res.samples, {"nfe": res.nfe, "n_vjp": res.n_vjp, "wall_time": res.wall_time}


# ---------------------------------------------------------------------------------------------------- deepinv
def _deepinv_problem(dinv, gp: testing.GMMInverseProblem, n: int):
    """deepinv DecomposablePhysics (exact SVD of A), embedded measurement and denoiser."""
    from _inverse_peers import GMMDenoiserDeepinv

    from genlab.inverse import GMMDenoiser

    a = gp.A.double()
    dy, d = a.shape
    u, s, vh = torch.linalg.svd(a, full_matrices=True)
    mask = torch.zeros(d, dtype=torch.float64)
    mask[:dy] = s
    S = EMBED_SCALE

    def U(c):  # (B,1,1,d) spectral -> (B,1,1,dy)
        return (c.reshape(c.shape[0], -1)[:, :dy].double() @ u.T).to(c.dtype).reshape(c.shape[0], 1, 1, dy)

    def U_adjoint(y):  # (B,1,1,dy) -> (B,1,1,d), zero beyond d_y
        out = torch.zeros(y.shape[0], d, dtype=torch.float64)
        out[:, :dy] = y.reshape(y.shape[0], -1).double() @ u
        return out.to(y.dtype).reshape(y.shape[0], 1, 1, d)

    def V(c):
        return (c.reshape(c.shape[0], -1).double() @ vh).to(c.dtype).reshape(c.shape[0], 1, 1, d)

    def V_adjoint(x):
        return (x.reshape(x.shape[0], -1).double() @ vh.T).to(x.dtype).reshape(x.shape[0], 1, 1, d)

    noise = dinv.physics.GaussianNoise(sigma=gp.problem.sigma / (2 * S))
    physics = dinv.physics.DecomposablePhysics(U=U, U_adjoint=U_adjoint, V=V, V_adjoint=V_adjoint,
                                               mask=mask.reshape(1, 1, 1, d), noise_model=noise)
    y = gp.problem.y.double()[0]
    y_img = ((y + S * (a @ torch.ones(d, dtype=torch.float64))) / (2 * S)).reshape(1, 1, 1, dy)
    den = GMMDenoiserDeepinv(GMMDenoiser(gp.prior, VPDiffusion()), S)
    return physics, y_img.expand(n, 1, 1, dy).contiguous(), den


def run_deepinv(peer, name: str, kw: dict, gp: testing.GMMInverseProblem, n: int, steps: int,
                seed: int) -> tuple[torch.Tensor, dict]:
    """One deepinv method on the embedded problem; returns (samples in x units, cost dict)."""
    dinv = peer.module
    physics, y_img, den = _deepinv_problem(dinv, gp, n)
    rng = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    f64 = torch.float64
    if name == "DPS":
        model = dinv.sampling.DPS(den, schedule="vp", solver="ddpm", num_steps=steps, dtype=f64, rng=rng, **kw)
    elif name in ("ΠGDM", "MM"):
        fid_cls = (dinv.sampling.PiGDMDataFidelity if name == "ΠGDM" else dinv.sampling.MomentMatchingDataFidelity)
        sde = dinv.sampling.VariancePreservingDiffusion(alpha=1.0, dtype=f64)
        solver = dinv.sampling.DDPMSolver(timesteps=torch.linspace(1, 0, steps, dtype=f64), rng=rng)
        model = dinv.sampling.PosteriorDiffusion(data_fidelity=fid_cls(**kw), denoiser=den, sde=sde, solver=solver,
                                                 dtype=f64)
    elif name == "DDRM":
        import numpy as np

        model = dinv.sampling.DDRM(den, sigmas=np.linspace(1, 0, steps), **kw)
    elif name == "DiffPIR":
        model = dinv.sampling.DiffPIR(den, dinv.optim.data_fidelity.L2(), max_iter=steps,
                                      sigma=gp.problem.sigma / (2 * EMBED_SCALE), **kw)
    else:
        raise ValueError(f"unknown deepinv method {name!r}")
    start = time.perf_counter()
    with torch.no_grad():
        out = model(y_img, physics, seed=seed) if name != "DDRM" else model(y_img, physics, seed=seed + 1)
    wall = time.perf_counter() - start
    x = EMBED_SCALE * (2 * out.reshape(n, -1).double() - 1)
    return x, {"nfe": den.nfe, "n_vjp": den.nfe if name in ("DPS", "ΠGDM", "MM") else 0, "wall_time": wall}


# ---------------------------------------------------------------------------------------------------- scoring
def score(x: torch.Tensor, gp: testing.GMMInverseProblem, seed: int) -> dict:
    """SW1 to a fresh exact-posterior set and the mode-weight TV (NaN for non-finite samples)."""
    if not bool(torch.isfinite(x).all()):
        return {"sw": float("nan"), "mode_tv": float("nan"), "status": "non-finite samples"}
    gen = torch.Generator().manual_seed(10_000 + seed)
    ref = gp.posterior.sample(x.shape[0], generator=gen)
    return {"sw": testing.sliced_w1(x, ref, generator=torch.Generator().manual_seed(123)),
            "mode_tv": testing.mode_weight_tv(x, gp.posterior), "status": "ok"}


def problem_base(d: int, dy: int, seed: int, n: int) -> tuple[testing.GMMInverseProblem, dict]:
    gp = testing.mcgdiff_problem(d, dy, seed)
    floor = testing.noise_floor(gp.posterior, n, seed=seed)
    prior_sw = testing.sliced_w1(gp.prior.sample(n, generator=torch.Generator().manual_seed(7)),
                                 gp.posterior.sample(n, generator=torch.Generator().manual_seed(8)),
                                 generator=torch.Generator().manual_seed(123))
    return gp, {"d": d, "d_y": dy, "seed": seed, "sigma": gp.problem.sigma, "floor": floor, "prior_sw": prior_sw}


def run_problem(d: int, dy: int, seed: int, n: int, nfe: int, genlab_specs: list[Spec],
                peer_runs: list[tuple[str, str, dict]], peer, log: Callable[[str], None]) -> list[dict]:
    """Every configuration on one (d, d_y, seed) problem."""
    gp, base = problem_base(d, dy, seed, n)
    prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
    latent = LatentPrior(prior.field, LinearAutoEncoder.from_matrix(torch.eye(d, dtype=torch.float64)))
    rows = []
    for sp in genlab_specs:
        try:
            x, cost = run_genlab(sp, gp, prior, latent, n, seed)
            rows.append({**base, "side": "genlab", "method": sp.label, **cost, **score(x, gp, seed)})
        except ValueError as err:  # a diverged run is reported, not hidden
            rows.append({**base, "side": "genlab", "method": sp.label, "sw": float("nan"), "mode_tv": float("nan"),
                         "nfe": 0, "n_vjp": 0, "wall_time": float("nan"), "status": f"failed: {str(err)[:120]}"})
    for label, name, kw in peer_runs:
        try:
            x, cost = run_deepinv(peer, name, kw, gp, n, nfe, seed)
            rows.append({**base, "side": "deepinv", "method": label, "kw": kw, **cost, **score(x, gp, seed)})
        except (ValueError, RuntimeError) as err:
            rows.append({**base, "side": "deepinv", "method": label, "kw": kw, "sw": float("nan"),
                         "mode_tv": float("nan"), "nfe": 0, "n_vjp": 0, "wall_time": float("nan"),
                         "status": f"failed: {str(err)[:120]}"})
    log(f"d={d} d_y={dy} seed={seed}: " + ", ".join(f"{r['method']} {r['sw']:.3g}" for r in rows))
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """Per (d, d_y, method): SW estimate (mean, 95 % interval), median, floor estimate and verdict."""
    out = []
    for d, dy in sorted({(r["d"], r["d_y"]) for r in rows}):
        cell = [r for r in rows if (r["d"], r["d_y"]) == (d, dy)]
        seeds = sorted({r["seed"] for r in cell})
        floor = estimate([next(r["floor"] for r in cell if r["seed"] == s) for s in seeds])
        prior = estimate([next(r["prior_sw"] for r in cell if r["seed"] == s) for s in seeds])
        for m in dict.fromkeys(r["method"] for r in cell):
            mine = [r for r in cell if r["method"] == m]
            ok = [r for r in mine if r["status"] == "ok" and math.isfinite(r["sw"])]
            entry = {"d": d, "d_y": dy, "method": m, "side": mine[0]["side"], "failed": len(mine) - len(ok),
                     "floor": asdict(floor), "prior_sw": asdict(prior), "kw": mine[0].get("kw")}
            if ok:
                sw = estimate([r["sw"] for r in ok])
                entry.update({"sw": asdict(sw), "sw_median": statistics.median(r["sw"] for r in ok),
                              "mode_tv_median": statistics.median(r["mode_tv"] for r in ok),
                              "verdict": compare(sw, floor, reference="exact posterior").text,
                              "nfe": max(r["nfe"] for r in ok), "n_vjp": max(r["n_vjp"] for r in ok),
                              "wall_time": sum(r["wall_time"] for r in ok) / len(ok)})
            out.append(entry)
    return out


def _fmt(e: dict) -> str:
    s = e["sw"]
    return f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


# ---------------------------------------------------------------------------------------------------- tuning
def tune(args, peer, log) -> dict:
    """Held-out seeds: genlab candidate defaults and deepinv grids; the best setting per deepinv method and cell."""
    rows: list[dict] = []
    peer_runs = [(f"deepinv {name} {json.dumps(kw, sort_keys=True)}", name, kw)
                 for name, (_, grid) in DEEPINV.items() for kw in grid] if peer is not None else []
    for dy in args.dys:
        for seed in HELD_OUT:
            rows += run_problem(args.tune_d, dy, seed, args.tune_n, args.nfe, genlab_tuning_grid(args.nfe), peer_runs,
                                peer, log)
    agg = aggregate(rows)
    best: dict[str, dict] = {}
    for name in DEEPINV:
        for dy in args.dys:
            cands = [a for a in agg if a["d_y"] == dy and a["side"] == "deepinv" and a["method"].startswith(
                f"deepinv {name} ") and "sw" in a and a["failed"] == 0]
            if cands:
                b = min(cands, key=lambda a: a["sw_median"])
                best[f"{name}|{dy}"] = b["kw"]
    return {"rows": rows, "aggregate": agg, "best": best}


def tuning_markdown(res: dict, meta: dict) -> str:
    lines = ["# Held-out tuning for the MCGdiff GMM benchmark (problem seeds 100–102, never benchmarked)", "",
             (f"Command: `{COMMAND} --tune` — d = {meta['d']}, d_y ∈ {meta['dys']}, {meta['n']} samples, NFE ≤ "
             f"{meta['nfe']}, {meta['total_time']:.0f} s on {meta['threads']} thread(s) (budget: ≤ 15 min)."), "",
             ("Median SW over the 3 held-out seeds per cell (mean [95 % interval]); the geometric mean of the three "
             "cell medians ranks a setting across cells (a default must work in every cell)."), ""]
    agg = res["aggregate"]
    dys = meta["dys"]
    lines += ["| setting | " + " | ".join(f"d_y={dy}" for dy in dys) + " | geo-mean |",
              "|---|" + "---|" * (len(dys) + 1)]
    methods = list(dict.fromkeys(a["method"] for a in agg))
    for m in methods:
        cells = [next((a for a in agg if a["method"] == m and a["d_y"] == dy), None) for dy in dys]
        vals = [c["sw_median"] if c and "sw" in c and c["failed"] == 0 else float("nan") for c in cells]
        geo = math.exp(sum(math.log(v) for v in vals) / len(vals)) if all(math.isfinite(v) for v in vals) else \
            float("nan")
        lines.append(f"| {m} | " + " | ".join(
            f"{c['sw_median']:.3f} ({_fmt(c)})" + (f" {c['failed']} failed" if c["failed"] else "")
            if c and "sw" in c else "failed" for c in cells) + f" | {geo:.3f} |")
    lines += ["", "Floor per cell (median over seeds): " + ", ".join(
        f"d_y={dy}: {next(a for a in agg if a['d_y'] == dy)['floor']['mean']:.3f}" for dy in dys), "",
        "deepinv settings picked per cell (lowest held-out median SW): " + "; ".join(
            f"{k}: {v}" for k, v in res["best"].items()), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- STSL
#: STSL variants of the controlled experiment: (label, options, NFE per step).
STSL_VARIANTS: list[tuple[str, dict, int]] = [
    ("STSL (defaults: K=5, η_tr=0.02, fd_unit)", {}, 10),
    ("STSL no trace (η_tr=0, K=5)", {"eta_tr": 0.0}, 5),
    ("STSL trace ×100 (η_tr=2)", {"eta_tr": 2.0}, 10),
    ("STSL trace sign flipped (η_tr=−0.02)", {"eta_tr": -0.02}, 10),
    ("STSL exact-JVP trace (η_tr=0.02)", {"trace_estimator": "jvp"}, 5),
    ("STSL order: ẑ1 refreshed at the moved state", {"order": "refresh"}, 11),
    ("latent DPS (STSL K=1, η_tr=0)", {"eta_tr": 0.0, "K": 1}, 1),
]


def stsl_experiment(args, log) -> dict:
    """SW vs measured NFE for STSL and its ablations against latent DPS (= STSL K=1, no trace) on benchmark cells."""
    rows = []
    for dy in args.dys:
        for seed in range(args.stsl_seeds):
            gp, base = problem_base(8, dy, seed, args.stsl_n)
            prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
            latent = LatentPrior(prior.field, LinearAutoEncoder.from_matrix(torch.eye(8, dtype=torch.float64)))
            for label, opts, per_step in STSL_VARIANTS:
                budgets = (100, 200, 400, 800) if per_step == 1 else (50, 100, 200)
                for budget in budgets:
                    sp = Spec(label, "stsl", max(1, budget // per_step), latent=True, options=opts)
                    x, cost = run_genlab(sp, gp, prior, latent, args.stsl_n, seed)
                    rows.append({**base, "side": "genlab", "method": label, "budget": budget, **cost,
                                 **score(x, gp, seed)})
            log(f"STSL d=8 d_y={dy} seed={seed} done")
    return {"rows": rows}


def stsl_markdown(res: dict, meta: dict) -> str:
    rows = res["rows"]
    lines = ["# STSL's \"4× fewer NFE\" claim: a controlled experiment (issue 13)", "",
             (f"Command: `{COMMAND} --stsl` — d = 8, d_y ∈ {meta['dys']}, benchmark seeds 0–{meta['seeds'] - 1}, "
             f"{meta['n']} samples, {meta['total_time']:.0f} s on {meta['threads']} thread(s) (budget ≤ 15 min). "
             "STSL runs on the identity linear autoencoder (pixel space) with the exact GMM prior; NFE are measured."),
             "", ("Mean SW over seeds [95 % interval] per measured NFE budget; latent DPS is STSL with K = 1 and no "
             "trace term (PSLD without gluing). The claim holds where STSL at N NFE ≤ latent DPS at 4N NFE."), ""]
    for dy in meta["dys"]:
        cell = [r for r in rows if r["d_y"] == dy and r["status"] == "ok"]
        floor = estimate([r["floor"] for r in cell if r["method"] == cell[0]["method"] and
                          r["budget"] == cell[0]["budget"]])
        lines += [f"## d_y = {dy} (floor {floor.mean:.3f})", "", "| variant | NFE | SW mean [95 % CI] |", "|---|---|---|"]
        for label, _, _ in STSL_VARIANTS:
            for budget in sorted({r["budget"] for r in cell if r["method"] == label}):
                vals = [r["sw"] for r in cell if r["method"] == label and r["budget"] == budget]
                nfe = max(r["nfe"] for r in cell if r["method"] == label and r["budget"] == budget)
                e = estimate(vals)
                lines.append(f"| {label} | {nfe} | {e.mean:.3f} [{e.low:.3f}, {e.high:.3f}] |")
        lines.append("")
    lines += ["## Verdict", "", *meta.get("verdict", []), ""]
    return "\n".join(lines)


def stsl_verdict(res: dict, dys: list[int]) -> list[str]:
    """Claim check per cell: STSL (defaults) at N vs latent DPS at 4N; trace-term effect at equal K and NFE."""
    out = []
    rows = [r for r in res["rows"] if r["status"] == "ok"]

    def mean(label: str, dy: int, budget: int) -> float:
        v = [r["sw"] for r in rows if r["method"] == label and r["d_y"] == dy and r["budget"] == budget]
        return sum(v) / len(v) if v else float("nan")

    stsl, dps, notr, order = STSL_VARIANTS[0][0], STSL_VARIANTS[-1][0], STSL_VARIANTS[1][0], STSL_VARIANTS[5][0]
    for dy in dys:
        for n in (100, 200):
            a, b = mean(stsl, dy, n), mean(dps, dy, 4 * n)
            out.append(f"- d_y = {dy}: STSL at {n} NFE {a:.3f} vs latent DPS at {4 * n} NFE {b:.3f} → claim "
                       f"{'holds' if a <= b else 'does not hold'}; STSL vs latent DPS at equal NFE {n}: "
                       f"{a:.3f} vs {mean(dps, dy, n):.3f}; trace on vs off (K = 5, {n} NFE budget): "
                       f"{a:.3f} vs {mean(notr, dy, n):.3f}; sign flipped {mean(STSL_VARIANTS[3][0], dy, n):.3f}; "
                       f"order 'refresh' {mean(order, dy, n):.3f}.")
    return out


# ---------------------------------------------------------------------------------------------------- benchmark
def markdown(agg: list[dict], meta: dict) -> str:
    runs = meta.get("per_run") or [{k: meta[k] for k in ("dims", "seeds", "n", "total_time", "command")}]
    lines = ["# Posterior sampling on the MCGdiff GMM protocol: genlab defaults vs deepinv", "",
             (f"NFE ≤ {meta['nfe']}, torch {meta['torch']} on {meta['threads']} thread(s) of a shared 2-core machine "
              "(load ≈ 20 during the runs; budget 15 min per run, exceeded at d = 80). Runs, then "
              f"`{COMMAND} --merge results/inverse_gmm_d8.json results/inverse_gmm_d80.json`:"), "",
             *[(f"- d = {', '.join(map(str, r['dims']))}: `{r['command']}` — {r['seeds']} benchmark seeds "
                f"(0–{r['seeds'] - 1}) per cell, {r['n']} samples, {r['total_time']:.0f} s.") for r in runs], "",
             ("SW = sliced W1 to fresh exact-posterior samples: mean over seeds with its 95 % interval, and median; "
             "floor = two exact sets (same statistic); verdict = Welch comparison with the floor. genlab rows are "
             "each method at its defaults (`solve(problem, prior, name)`); deepinv rows at its defaults and tuned "
             "per cell on the held-out seeds 100–102 (`inverse_gmm_tuning.md`). † = reconstructed method."), ""]
    cells = sorted({(a["d"], a["d_y"]) for a in agg})
    for d, dy in cells:
        rows = [a for a in agg if (a["d"], a["d_y"]) == (d, dy)]
        f, p = rows[0]["floor"], rows[0]["prior_sw"]
        lines += [(f"## d = {d}, d_y = {dy}  (floor {f['mean']:.3f} [{f['low']:.3f}, {f['high']:.3f}], "
                  f"prior {p['mean']:.2f})"), "",
                  "| side | method | SW mean [95 % CI] | SW median | verdict | mode TV | NFE | VJP | wall (s) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for a in sorted(rows, key=lambda r: r.get("sw_median", math.inf)):
            if "sw" not in a:
                lines.append(f"| {a['side']} | {a['method']} | all {a['failed']} failed | | | | | | |")
                continue
            fail = f" ({a['failed']} failed)" if a["failed"] else ""
            lines.append(f"| {a['side']} | {a['method']}{fail} | {_fmt(a)} | {a['sw_median']:.3f} | {a['verdict']} | "
                         f"{a['mode_tv_median']:.3f} | {a['nfe']} | {a['n_vjp']} | {a['wall_time']:.2f} |")
        lines.append("")
    lines += ["## Best per cell: genlab's best default vs deepinv's best (defaults or held-out-tuned), median SW",
              "", "| cell | floor | genlab best default | deepinv best | ratio | goal ≤ 0.5× |", "|---|---|---|---|---|---|"]
    for d, dy in cells:
        rows = [a for a in agg if (a["d"], a["d_y"]) == (d, dy) and "sw" in a and a["failed"] == 0]
        gl = [a for a in rows if a["side"] == "genlab"]
        di = [a for a in rows if a["side"] == "deepinv"]
        if not gl or not di:
            continue
        g = min(gl, key=lambda a: a["sw_median"])
        b = min(di, key=lambda a: a["sw_median"])
        ratio = g["sw_median"] / b["sw_median"]
        lines.append(f"| d={d}, d_y={dy} | {g['floor']['mean']:.3f} | {g['method']} {g['sw_median']:.3f} | "
                     f"{b['method']} {b['sw_median']:.3f} | {ratio:.2f}× | {'met' if ratio <= 0.5 else 'not met'} |")
    lines += ["", "Notes: " + " ".join(meta["notes"]), ""]
    return "\n".join(lines)


def plot(agg: list[dict], path: Path) -> None:
    """One panel per cell: median SW per configuration (log scale) with the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted({(a["d"], a["d_y"]) for a in agg})
    methods = list(dict.fromkeys(a["method"] for a in agg))
    fig, axes = plt.subplots(1, len(cells), figsize=(3.4 * len(cells), 4.6), sharey=True, squeeze=False)
    for ax, (d, dy) in zip(axes[0], cells):
        rows = {a["method"]: a for a in agg if (a["d"], a["d_y"]) == (d, dy)}
        vals = [rows[m]["sw_median"] if m in rows and "sw_median" in rows[m] else float("nan") for m in methods]
        ax.bar(range(len(methods)), vals,
               color=["C3" if rows.get(m, {}).get("side") == "deepinv" else "C0" for m in methods])
        ax.axhline(next(iter(rows.values()))["floor"]["mean"], color="k", ls="--", lw=1, label="noise floor")
        ax.set_yscale("log")
        ax.set_title(f"d={d}, d_y={dy}")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=90, fontsize=6)
    axes[0][0].set_ylabel("median sliced W1 to the exact posterior")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write_json(path: Path, obj: dict) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=1)


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tuning or the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 80])
    parser.add_argument("--dys", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="samples per method (and exact posterior samples)")
    parser.add_argument("--nfe", type=int, default=100)
    parser.add_argument("--tune", action="store_true", help="held-out tuning run (seeds 100-102) instead")
    parser.add_argument("--tune-d", type=int, default=8)
    parser.add_argument("--tune-n", type=int, default=500)
    parser.add_argument("--tag", default="", help="suffix of the output files (e.g. _d80 for a partial run)")
    parser.add_argument("--stsl", action="store_true", help="the controlled STSL experiment instead")
    parser.add_argument("--stsl-seeds", type=int, default=2)
    parser.add_argument("--stsl-n", type=int, default=1000)
    parser.add_argument("--merge", nargs="+", default=None, help="merge the rows of these result JSONs and rewrite")
    parser.add_argument("--quick", action="store_true", help="d = 8 only, 1 seed, 500 samples")
    parser.add_argument("--no-peers", action="store_true", help="skip deepinv")
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.seeds, args.n = [8], 1, 500
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    out = Path(args.out)
    log = lambda s: print(s, flush=True)
    notes = ["torch.set_num_threads(1), set_flush_denormal(True).",
             f"deepinv embedding scale S = {EMBED_SCALE:g}; operator as DecomposablePhysics (exact SVD).",
             "STSL-px = STSL on the identity linear autoencoder (pixel space), its defaults, 10 steps (10 NFE/step).",
             "Dreamguider is a reconstruction (reference/inverse.md §1.7), run with its defaults.",
             "deepinv's DDRM/DiffPIR count NFE as denoiser calls; their n_vjp is 0 (no network gradient)."]
    if args.merge:
        rows, metas = [], []
        for p in args.merge:
            obj = json.loads(Path(p).read_text())
            rows += obj["rows"]
            metas.append(obj["meta"])
        meta = {**metas[0], "dims": sorted({d for m in metas for d in m["dims"]}),
                "total_time": sum(m["total_time"] for m in metas),
                "command": " && ".join(m["command"] for m in metas),
                "per_run": [{k: m[k] for k in ("dims", "seeds", "n", "total_time", "command")} for m in metas]}
        agg = aggregate(rows)
        _write_json(out / "inverse_gmm.json", {"meta": meta, "aggregate": agg, "rows": rows})
        _write_text(out / "inverse_gmm.md", markdown(agg, meta))
        plot(agg, out / "inverse_gmm.png")
        print(markdown(agg, meta))
        return 0
    if args.stsl:
        start = time.perf_counter()
        res = stsl_experiment(args, log)
        meta = {"dys": args.dys, "seeds": args.stsl_seeds, "n": args.stsl_n, "threads": torch.get_num_threads(),
                "torch": torch.__version__, "total_time": time.perf_counter() - start,
                "variants": [(lab, o, k) for lab, o, k in STSL_VARIANTS]}
        meta["verdict"] = stsl_verdict(res, args.dys)
        _write_json(out / "inverse_gmm_stsl.json", {"meta": meta, **res})
        md = stsl_markdown(res, meta)
        _write_text(out / "inverse_gmm_stsl.md", md)
        print(md)
        return 0
    peer = None
    if not args.no_peers:
        try:
            from _inverse_peers import load_deepinv

            peer = load_deepinv()
            log(f"deepinv {peer.version} loaded; shims: {peer.shims or 'none'}")
            notes.append(f"deepinv {peer.version}; shims used: {'; '.join(peer.shims) or 'none'}.")
        except ImportError as err:
            log(f"deepinv unavailable ({err}); running genlab only")
            notes.append(f"deepinv unavailable: {err}")
    start = time.perf_counter()
    if args.tune:
        res = tune(args, peer, log)
        meta = {"d": args.tune_d, "dys": args.dys, "n": args.tune_n, "nfe": args.nfe, "seeds": list(HELD_OUT),
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "total_time": time.perf_counter() - start, "notes": notes}
        _write_json(out / "inverse_gmm_tuning.json", {"meta": meta, **res})
        md = tuning_markdown(res, meta)
        _write_text(out / "inverse_gmm_tuning.md", md)
        print(md)
        return 0
    best = {}
    tuning_file = out / "inverse_gmm_tuning.json"
    if peer is not None:
        if not tuning_file.exists():
            raise SystemExit(f"run `{COMMAND} --tune` first: the tuned deepinv settings come from {tuning_file}")
        best = json.loads(tuning_file.read_text())["best"]
    rows: list[dict] = []
    for d in args.dims:
        for dy in args.dys:
            peer_runs = []
            if peer is not None:
                for name, (default, _) in DEEPINV.items():
                    peer_runs.append((f"deepinv {name} (defaults)", name, default))
                    tuned = best.get(f"{name}|{dy}")
                    if tuned is not None and tuned != default:
                        peer_runs.append((f"deepinv {name} (tuned {json.dumps(tuned, sort_keys=True)})", name,
                                          tuned))
            for seed in range(args.seeds):
                rows += run_problem(d, dy, seed, args.n, args.nfe, genlab_defaults(args.nfe), peer_runs, peer, log)
    total = time.perf_counter() - start
    agg = aggregate(rows)
    cmd = COMMAND + (f" --dims {' '.join(map(str, args.dims))}" if args.dims != [8, 80] else "") + \
        (f" --seeds {args.seeds}" if args.seeds != 5 else "") + (f" --n {args.n}" if args.n != 2000 else "") + \
        (f" --tag {args.tag}" if args.tag else "")
    meta = {"seeds": args.seeds, "n": args.n, "nfe": args.nfe, "dims": args.dims, "dys": args.dys,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "total_time": total, "command": cmd, "deepinv_tuned": best,
            "genlab_specs": [asdict(s) for s in genlab_defaults(args.nfe)], "notes": notes}
    _write_json(out / f"inverse_gmm{args.tag}.json", {"meta": meta, "aggregate": agg, "rows": rows})
    md = markdown(agg, meta)
    _write_text(out / f"inverse_gmm{args.tag}.md", md)
    try:
        plot(agg, out / f"inverse_gmm{args.tag}.png")
    except ImportError:
        log("matplotlib missing: no picture")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
