"""SMC posterior samplers (MCGdiff, TDS) on the MCGdiff GMM problems: sliced W1 to the exact posterior against the
particle count, i.e. the cost (issue 13).

Protocol: ``genlab.inverse.testing.mcgdiff_problem(d, d_y, seed)`` (Cardoso et al. ICLR'24: 25 unit-covariance
components on {−16, −8, 0, 8, 16}² tiled, ``A = U diag(s) V[:d_y]``, σ = U(0,1)·max s), the exact prior denoiser
(``DiffusionPrior.from_gmm`` on ``VPDiffusion()``), ``--steps`` uniform steps, ``--n`` output samples per run (one
per SMC system, each system with N particles). Cost axis: particle evaluations of the denoiser per output sample
(N × steps; the batched network calls are ``steps`` (+1 for TDS) whatever N). Metric: sliced W1 (100 slices)
between the samples and as many fresh exact posterior samples; floor: ``testing.posterior_floor`` (two exact sets of
the same size, 5 draws). Per cell: mean ± 95 % CI over problem seeds (``genlab.metrics.uncertainty.estimate``) of
SW, floor and the ratio SW/floor, and a Welch verdict of SW against the floor (``compare``).

Command (the results file states its own command and budget):
    OMP_NUM_THREADS=1 .venv/bin/python experiments/bench_inverse_smc.py --out experiments/results

Writes ``inverse_smc.json``, ``inverse_smc.md`` and ``inverse_smc.png`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch

from genlab.interpolants import VPDiffusion
from genlab.inverse import DiffusionPrior, solve, testing
from genlab.metrics.uncertainty import compare, estimate
from genlab.utils import atomic_write


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


#: Benchmark labels -> (registered method, options). "tds" runs at its defaults (variance-inflated twist, data
#: variance read from the prior's denoiser); "tds_dps" is the paper's DPS twist; "tds_gauss" the variance-inflated
#: twist with the prior's true mean per-coordinate variance (known here because the prior is).
METHODS = {"mcgdiff": ("mcgdiff", {}), "tds": ("tds", {}), "tds_dps": ("tds", {"twist": "dps"}),
           "tds_gauss": ("tds", {"twist": "gaussian"})}


def run(args: argparse.Namespace) -> dict:
    """All (d, d_y, seed, method, N) runs (rows already in ``--reuse`` are taken from there)."""
    rows = []
    done: dict[tuple, dict] = {}
    if args.reuse:
        for r in json.loads(Path(args.reuse).read_text())["rows"]:
            done[(r["d"], r["d_y"], r["seed"], r["method"], r["n_particles"], r["steps"], r.get("n", args.n))] = r
    start = time.perf_counter()
    for d in args.dims:
        for dy in args.dys:
            for seed in args.seeds:
                gp = testing.mcgdiff_problem(d, dy, seed)
                prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
                floor = testing.posterior_floor(gp.posterior, args.n, seed=seed)
                ref = gp.posterior.sample(args.n, generator=torch.Generator().manual_seed(10_000 + seed))
                for method in args.methods:
                    name, opts = METHODS[method]
                    if method == "tds_gauss":
                        opts = {**opts, "twist_data_var": float(torch.diagonal(gp.prior.cov).mean())}
                    cap = args.max_particles_tds if method.startswith("tds") else args.max_particles
                    for n_part in [p for p in args.particles if p <= cap and (d < 80 or p <= args.max_particles_d80)]:
                        key = (d, dy, seed, method, n_part, args.steps, args.n)
                        if key in done:
                            rows.append(done[key])
                            continue
                        t0 = time.perf_counter()
                        res = solve(gp.problem, prior, name, n_particles=n_part, steps=args.steps, n_samples=args.n,
                                    seed=seed, **opts)
                        sw = testing.sliced_w1(res.samples, ref, generator=torch.Generator().manual_seed(123))
                        rows.append({"d": d, "d_y": dy, "seed": seed, "method": method, "n_particles": n_part,
                                     "steps": args.steps, "n": args.n, "options": opts, "nfe_calls": res.nfe, "n_vjp": res.n_vjp,
                                     "particle_evals_per_sample": res.nfe * n_part, "sw": sw,
                                     "floor": floor.to_dict(), "ratio": sw / floor.mean,
                                     "ess_min": float(res.ess.min()), "ess_final_mean": float(res.ess[-1].mean()),
                                     "resampled_fraction": res.n_resampled / (args.n * args.steps),
                                     "wall_s": time.perf_counter() - t0})
                        print(f"d={d} dy={dy} seed={seed} {method} N={n_part}: SW {sw:.3f} floor {floor.mean:.3f} "
                              f"({time.perf_counter() - t0:.1f} s, total {time.perf_counter() - start:.0f} s)",
                              flush=True)
    return {"rows": rows, "total_s": sum(r["wall_s"] for r in rows)}


def aggregate(rows: list[dict]) -> list[dict]:
    """Per (d, d_y, method, N): estimates over problem seeds and the verdict against the floor."""
    out = []
    keys = sorted({(r["d"], r["d_y"], r["method"], r["n_particles"]) for r in rows})
    for d, dy, method, n_part in keys:
        rs = [r for r in rows if (r["d"], r["d_y"], r["method"], r["n_particles"]) == (d, dy, method, n_part)]
        sw = estimate([r["sw"] for r in rs])
        floor = estimate([r["floor"]["mean"] for r in rs])
        ratio = estimate([r["ratio"] for r in rs])
        # per problem seed: the single SW against that problem's floor (5 draws), and the 2× goal
        within = sum(compare(estimate([r["sw"]]), estimate(r["floor"]["values"])).within_noise for r in rs)
        out.append({"d": d, "d_y": dy, "method": method, "n_particles": n_part, "seeds": len(rs),
                    "ratios": [r["ratio"] for r in rs], "within_2x": sum(r["ratio"] <= 2.0 for r in rs),
                    "within_noise": within,
                    "particle_evals_per_sample": rs[0]["particle_evals_per_sample"], "nfe_calls": rs[0]["nfe_calls"],
                    "sw": sw.to_dict(), "floor": floor.to_dict(), "ratio": ratio.to_dict(),
                    "verdict_pooled": compare(sw, floor, reference="exact-posterior floor").text,
                    "ess_min": min(r["ess_min"] for r in rs), "wall_s": sum(r["wall_s"] for r in rs) / len(rs)})
    return out


def markdown(agg: list[dict], meta: dict) -> str:
    """The tables."""
    lines = ["# SMC posterior samplers on the MCGdiff GMM problems (issue 13)", "",
             f"Command: `{meta['command']}`", "",
             (f"Exact prior denoiser on VP, {meta['steps']} uniform steps, {meta['n']} output samples per run (one per "
              f"SMC system), problem seeds {meta['seeds']}; torch {meta['torch']} on 1 thread of a shared 2-core "
              f"machine; {meta['total_s']:.0f} s of sampling in all, summed over runs (budget ≤ 15 min: "
              f"{'met' if meta['total_s'] <= 900 else 'exceeded at this load; --methods mcgdiff,tds fits'}). "
              "Cost = particle evaluations of the "
              "denoiser per output sample (N × steps). SW: sliced W1 (100 slices) to fresh exact-posterior samples of "
              "the same size; floor: two exact sets (`testing.posterior_floor`). Values: mean ± 95 % CI over problem "
              "seeds (the floor differs between problems, so the CI mixes problem spread with sampling noise); ratio = "
              "SW/floor per seed; 'within noise of own floor' = Welch verdict of each seed's SW against that "
              "problem's floor interval (`genlab.metrics.uncertainty.compare`)."), "",
             ("Methods: `mcgdiff` and `tds` at their defaults (`solve(problem, prior, name, n_particles=N)`; TDS's "
              "default twist is the variance-inflated Gaussian one with the data variance read from the prior's own "
              "denoiser); `tds_dps` = TDS with the paper's DPS twist (`twist='dps'`; with N = 1 it is score-mode DPS); "
              "`tds_gauss` = the Gaussian twist with `twist_data_var` = the prior's true mean per-coordinate variance "
              "(an oracle choice). With N = 1 each is its proposal alone."), ""]
    for d, dy in sorted({(a["d"], a["d_y"]) for a in agg}):
        cell = [a for a in agg if (a["d"], a["d_y"]) == (d, dy)]
        lines += [f"## d = {d}, d_y = {dy} (floor {estimate(cell[0]['floor']['values']).format()})", "",
                  ("| method | N | cost / sample | SW | SW / floor | ratio per seed | ≤ 2× floor | "
                   "within noise of own floor | min ESS | wall (s) |"),
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for a in cell:
            lines.append(f"| {a['method']} | {a['n_particles']} | {a['particle_evals_per_sample']} | "
                         f"{estimate(a['sw']['values']).format()} | {estimate(a['ratio']['values']).format()} | "
                         f"{', '.join(f'{v:.2f}' for v in a['ratios'])} | {a['within_2x']}/{a['seeds']} | "
                         f"{a['within_noise']}/{a['seeds']} | {a['ess_min']:.1f} | {a['wall_s']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def plot(agg: list[dict], path: Path) -> None:
    """SW/floor against cost, one panel per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted({(a["d"], a["d_y"]) for a in agg})
    fig, axes = plt.subplots(1, len(cells), figsize=(4 * len(cells), 3.4), squeeze=False)
    for ax, (d, dy) in zip(axes[0], cells):
        for method, color in (("mcgdiff", "C0"), ("tds", "C1"), ("tds_dps", "C3"), ("tds_gauss", "C2")):
            rs = [a for a in agg if (a["d"], a["d_y"], a["method"]) == (d, dy, method)]
            if not rs:
                continue
            x = [a["particle_evals_per_sample"] for a in rs]
            y = [a["ratio"]["mean"] for a in rs]
            lo = [a["ratio"]["mean"] - a["ratio"]["low"] for a in rs]
            hi = [a["ratio"]["high"] - a["ratio"]["mean"] for a in rs]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", color=color, label=method, capsize=2)
        ax.axhline(1.0, color="k", lw=0.8, label="noise floor")
        ax.axhline(2.0, color="k", lw=0.8, ls="--", label="2 × floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("denoiser evaluations per sample")
        ax.set_title(f"d = {d}, d_y = {dy}")
    axes[0][0].set_ylabel("SW / noise floor")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    """Run, aggregate and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="experiments/results")
    ap.add_argument("--name", default="inverse_smc")
    ap.add_argument("--dims", type=_ints, default=[8])
    ap.add_argument("--dys", type=_ints, default=[1, 2, 4])
    ap.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    ap.add_argument("--methods", type=lambda s: s.split(","), default=["mcgdiff", "tds", "tds_dps", "tds_gauss"])
    ap.add_argument("--particles", type=_ints, default=[1, 4, 16, 64, 256, 1024])
    ap.add_argument("--max-particles", type=int, default=1024)
    ap.add_argument("--max-particles-tds", type=int, default=256)
    ap.add_argument("--max-particles-d80", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--reuse", default=None, help="a previous JSON whose rows are kept instead of re-run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = run(args)
    agg = aggregate(out["rows"])
    shown = list(argv or [])
    if "--reuse" in shown:  # the rows of a --reuse run are those of the command without it (fixed seeds)
        i = shown.index("--reuse")
        del shown[i:i + 2]
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python experiments/bench_inverse_smc.py " + " ".join(shown)
    meta = {"command": cmd.strip(), "steps": args.steps, "n": args.n, "seeds": args.seeds, "torch": torch.__version__,
            "python": platform.python_version(), "total_s": out["total_s"], "particles": args.particles}
    path = Path(args.out)
    with atomic_write(path / f"{args.name}.json", "w") as fh:
        json.dump({"meta": meta, "aggregate": agg, "rows": out["rows"]}, fh, indent=1,
                  default=lambda v: None if isinstance(v, float) and not math.isfinite(v) else str(v))
    with atomic_write(path / f"{args.name}.md", "w") as fh:
        fh.write(markdown(agg, meta))
    plot(agg, path / f"{args.name}.png")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
