"""Native UniPC and DPM-Solver-v3 at NFE ≤ 10 on exact Gaussian-mixture fields (issue 11, part A).

Every sampler runs with its **defaults** (``genlab.sample``'s recommended grid: uniform in log-SNR for all of them),
on the same fixed noises, and is scored against a tight dopri5 solution of the same probability-flow ODE between the
same grid ends. Data: (1/8) Σ N(μ_k, 0.09·I), μ_k ~ N(0, I_d) (the mixture of ``bench_samplers.py``), d ∈ {2, 16, 64};
paths: continuous VP (ε-field) and rectified flow (velocity field), both exact (:func:`genlab.analytic.exact_field`).
Metrics per run: median per-sample RMS endpoint error and RMSE without the worst 1 % of samples (RMSE99); every cell
is the mean ± 95 % half-width over ``--seeds`` independent noise sets (:func:`genlab.metrics.uncertainty.estimate`).
DPM-Solver-v3's statistics (its defaults: 128 trajectories, 100 λ-steps, 303 batched evaluations) are computed once
per field and reported separately; its NFE column counts the sampling evaluations only.

Paper claims checked: UniPC beats DPM-Solver++ at few steps (Zhao et al. 2023, Tables 1–3); DPM-Solver-v3 beats
DPM-Solver++ and UniPC at 5–10 NFE (Zheng et al. 2023, Tables 1–3).

Usage: ``python experiments/bench_fast_samplers.py [--seeds 3] [--n 256] [--dims 2 16 64]``
(writes experiments/results/fast_samplers.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import genlab
from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import RectifiedFlow, VPDiffusion
from genlab.metrics.uncertainty import compare, estimate
from genlab.samplers import get_sampler
from genlab.utils import atomic_write

F64 = torch.float64
NFES = (4, 5, 6, 8, 10)
#: (label, registered name, options): the new samplers next to genlab's hand-designed exponential integrators.
SAMPLERS = [
    ("unipc (bh2, p=2)", "unipc", {}),
    ("unipc (bh2, p=3)", "unipc", {"order": 3}),
    ("unipc (bh1, p=2)", "unipc", {"variant": "bh1"}),
    ("dpm_solver_v3", "dpm_solver_v3", {}),
    ("dpmpp_2m", "dpmpp_2m", {}),
    ("dpmpp_3m", "dpmpp_3m", {}),
    ("deis_tab", "deis_tab", {}),
    ("ipndm", "ipndm", {}),
]
NEW = ("unipc (bh2, p=2)", "unipc (bh2, p=3)", "unipc (bh1, p=2)", "dpm_solver_v3")


def mixture(d: int) -> GaussianMixture:
    gen = torch.Generator().manual_seed(1000 + d)
    means = torch.randn(8, d, generator=gen, dtype=F64)
    return GaussianMixture(means, torch.full((8,), 0.09, dtype=F64), torch.full((8,), 1 / 8, dtype=F64))


def errors(x: torch.Tensor, ref: torch.Tensor, beta: float) -> dict[str, float]:
    """Median and RMSE99 of the per-sample RMS error in data units (x/β at the final time)."""
    per = ((x - ref) / beta).pow(2).mean(-1).sqrt()
    srt = per.sort().values
    keep = srt[: max(1, math.floor(0.99 * srt.numel()))]
    return {"median": float(per.median()), "rmse99": float(keep.pow(2).mean().sqrt())}


def run(dims: Sequence[int], seeds: int, n: int) -> dict:
    rows = []
    stats_cost: dict[str, dict] = {}
    for d in dims:
        gmm = mixture(d)
        for pname, interp, kind in (("vp", VPDiffusion(), "noise"), ("linear", RectifiedFlow(), "velocity")):
            field = exact_field(interp, "gaussian", gmm, kind)
            cells: dict[tuple[str, int], list[dict[str, float]]] = {}
            for seed in range(seeds):
                for nfe in NFES:
                    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
                    for label, name, opts in SAMPLERS:
                        t_start = get_sampler(name, **opts).recommended_grid(field, nfe)[:1]
                        x_init = interp.init_scale(t_start, z).reshape(-1, 1) * z
                        t0 = time.perf_counter()
                        res = genlab.sample(field, sampler=name, steps=nfe, x_init=x_init, **opts)
                        wall = time.perf_counter() - t0
                        grid = res.grid
                        key = (float(grid[0]), float(grid[-1]), seed)
                        if key not in cells.setdefault(("_ref", 0), [{}])[0]:
                            ref = get_sampler("dopri5", rtol=1e-9, atol=1e-9).sample(
                                field, x_init, torch.stack([grid[0], grid[-1]])).x
                            cells[("_ref", 0)][0][key] = ref
                        ref = cells[("_ref", 0)][0][key]
                        beta = float(interp.schedule.coeffs(grid[-1:]).beta)
                        stats_nfe = int(res.aux.get("statistics_nfe", 0))
                        if stats_nfe:
                            stats_cost[f"d={d} {pname}"] = {"nfe": stats_nfe, "wall_s": wall}
                        cells.setdefault((label, nfe), []).append(
                            {**errors(res.x, ref, beta), "nfe": res.nfe - stats_nfe})
            for (label, nfe), vals in cells.items():
                if label == "_ref":
                    continue
                rows.append({"d": d, "path": pname, "sampler": label, "nfe_budget": nfe,
                             "nfe": vals[0]["nfe"],
                             "rmse99": estimate([v["rmse99"] for v in vals]).to_dict(),
                             "median": estimate([v["median"] for v in vals]).to_dict()})
            print(f"d={d} {pname} done", flush=True)
    return {"rows": rows, "statistics_cost": stats_cost}


def _fmt(e: dict) -> str:
    half = 0.5 * (e["high"] - e["low"])
    return f"{e['mean']:.3g} ± {half:.2g}" if e["n"] > 1 else f"{e['mean']:.3g}"


def markdown(result: dict, cmd: str, wall: float, args: argparse.Namespace) -> str:
    rows = result["rows"]
    lines = [
        "# UniPC and DPM-Solver-v3 at NFE ≤ 10 (exact GMM fields, default grids)",
        "",
        (f"Generated by `{cmd}` ({time.strftime('%Y-%m-%d %H:%M')}, {wall:.0f} s wall on a shared 2-core CPU; "
         f"budget ≤ 15 min). torch {torch.__version__}, Python {platform.python_version()}, float64, "
         f"{args.n} noises × {args.seeds} seeds per cell."),
        "",
        ("* Data: (1/8) Σ N(μ_k, 0.09·I), μ_k ~ N(0, I_d); paths `vp` (continuous VP, ε-field) and `linear` "
         "(rectified flow, velocity field); every sampler with its defaults via `genlab.sample(field, sampler=X, "
         "steps=NFE)` (recommended grid: uniform in log-SNR inside the finite-λ ends for all rows)."),
        "* Reference: genlab dopri5 (rtol = atol = 1e-9) between the same grid ends from the same noise.",
        ("* Cells: RMSE99 (RMS error without the worst 1 % of samples, data units) as mean ± 95 % half-width "
         "over seeds; `median` tables below. **Bold**: lowest mean in the column for that (d, path)."),
        ("* DPM-Solver-v3: NFE counts sampling evaluations; its statistics cost (once per field, cached) is "
         "listed at the end."),
        "",
    ]
    for metric in ("rmse99", "median"):
        lines += [f"## {metric.upper() if metric == 'rmse99' else 'Median per-sample error'}", ""]
        for d in sorted({r["d"] for r in rows}):
            for path in ("vp", "linear"):
                sub = [r for r in rows if r["d"] == d and r["path"] == path]
                if not sub:
                    continue
                lines += [f"### d = {d}, {path}", "", "| sampler | " + " | ".join(f"NFE {k}" for k in NFES) + " |",
                          "|---|" + "---|" * len(NFES)]
                best = {k: min(r[metric]["mean"] for r in sub if r["nfe_budget"] == k) for k in NFES}
                for label, _, _ in SAMPLERS:
                    cells = []
                    for k in NFES:
                        r = next(r for r in sub if r["sampler"] == label and r["nfe_budget"] == k)
                        txt = _fmt(r[metric])
                        cells.append(f"**{txt}**" if r[metric]["mean"] == best[k] else txt)
                    lines.append(f"| {label} | " + " | ".join(cells) + " |")
                lines.append("")
    # claims: ratio of the new samplers to the best hand-designed genlab sampler, with a verdict
    lines += [
        "## New samplers vs the best hand-designed genlab sampler (RMSE99 ratio; verdict from the seed intervals)",
        "",
        ("| d | path | NFE | best hand-designed | unipc (default) | ratio | verdict | dpm_solver_v3 | ratio | "
         "verdict |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    from genlab.metrics.uncertainty import Estimate

    def est(e: dict) -> Estimate:
        return Estimate(mean=e["mean"], std=e["std"], n=e["n"], low=e["low"], high=e["high"],
                        values=tuple(e["values"]))

    for d in sorted({r["d"] for r in rows}):
        for path in ("vp", "linear"):
            for k in NFES:
                sub = {r["sampler"]: r for r in rows if r["d"] == d and r["path"] == path and r["nfe_budget"] == k}
                if not sub:
                    continue
                hand = min((s for s in sub if s not in NEW), key=lambda s: sub[s]["rmse99"]["mean"])
                out = [str(d), path, str(k), f"{hand} {_fmt(sub[hand]['rmse99'])}"]
                for new in ("unipc (bh2, p=2)", "dpm_solver_v3"):
                    v = compare(est(sub[new]["rmse99"]), est(sub[hand]["rmse99"]), reference="best hand-designed")
                    out += [_fmt(sub[new]["rmse99"]), f"{sub[new]['rmse99']['mean'] / sub[hand]['rmse99']['mean']:.2f}",
                            v.text]
                lines.append("| " + " | ".join(out) + " |")
    # the papers' own baselines: UniPC vs DPM-Solver++(2M) (Zhao et al.), DPM-Solver-v3 vs UniPC (Zheng et al.)
    lines += ["", "## Paper claims: UniPC vs DPM-Solver++(2M), DPM-Solver-v3 vs UniPC (RMSE99 ratio, verdict)", "",
              "| d | path | NFE | unipc / dpmpp_2m | verdict | dpm_solver_v3 / unipc | verdict |",
              "|---|---|---|---|---|---|---|"]
    for d in sorted({r["d"] for r in rows}):
        for path in ("vp", "linear"):
            for k in NFES:
                sub = {r["sampler"]: r for r in rows if r["d"] == d and r["path"] == path and r["nfe_budget"] == k}
                if not sub:
                    continue
                out = [str(d), path, str(k)]
                for a, b, name in (("unipc (bh2, p=2)", "dpmpp_2m", "dpmpp_2m"),
                                   ("dpm_solver_v3", "unipc (bh2, p=2)", "unipc")):
                    v = compare(est(sub[a]["rmse99"]), est(sub[b]["rmse99"]), reference=name)
                    out += [f"{sub[a]['rmse99']['mean'] / sub[b]['rmse99']['mean']:.2f}", v.text]
                lines.append("| " + " | ".join(out) + " |")
    lines += ["", "## DPM-Solver-v3 statistics cost (once per field)", "", "| field | NFE (batched calls) | wall s |",
              "|---|---|---|"]
    for k, v in result["statistics_cost"].items():
        lines.append(f"| {k} | {v['nfe']} | {v['wall_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fast_samplers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = run(args.dims, args.seeds, args.n)
    wall = time.perf_counter() - t0
    cmd = "python experiments/bench_fast_samplers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result.update({"command": cmd.strip(), "wall_s": wall, "seeds": args.seeds, "n": args.n, "dims": args.dims,
                   "nfes": list(NFES), "torch": torch.__version__})
    with atomic_write(args.out / "fast_samplers.json", "w") as fh:
        json.dump(result, fh, indent=1)
    with atomic_write(args.out / "fast_samplers.md", "w") as fh:
        fh.write(markdown(result, cmd.strip(), wall, args))
    print(f"wrote {args.out / 'fast_samplers.md'} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
