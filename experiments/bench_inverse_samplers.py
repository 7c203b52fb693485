"""Guidance through any sampler (issue 17): DPS and ΠGDM driven by every compatible registered sampler at equal NFE,
against the exact posterior.

Before the step engine, guidance ran only on its own DDIM/DDPM/Euler transitions; now a method enters any sampler
as a guided field (score mode), a post-step hook (DPS's and ΠGDM's paper updates) or a replacement of a one-step
transition (STSL, Dreamguider, DDS). This script measures what that buys at CPU scale:

* ``gaussian``: a Gaussian prior N(μ, I) in d = 8 with d_y = 2, σ = 0.5 (``genlab.inverse.testing.gaussian_problem``),
  whose posterior is exact (``genlab.analytic.gmm_posterior``);
* ``mcgdiff``: the MCGdiff Gaussian-mixture protocol in d = 8, d_y = 2 (``testing.mcgdiff_problem``; 25 modes).

Methods: DPS (Chung et al. ICLR'23, Alg. 1, ζ' = 0.25, the post-step correction) and ΠGDM (Song et al. ICLR'23,
Alg. 1, the paper's additive update). Samplers: every registered sampler with one evaluation per step on the VP
prior (``ddpm`` = ``ddim`` with η = 1). Metric: sliced W1 to as many exact posterior samples (median over seeds),
at NFE ∈ {10, 20, 50} on the uniform grid.

Writes ``inverse_samplers.json`` and ``inverse_samplers.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from genlab.interpolants.presets import VPDiffusion
from genlab.inverse import DiffusionPrior, get_method, solve, testing

SAMPLERS = ("ddpm", "ddim", "euler", "euler_maruyama", "dpmpp_2m", "dpmpp_3m", "deis_tab", "ipndm")
METHODS = ("dps", "pigdm")


def _problem(name: str, seed: int) -> testing.GMMInverseProblem:
    if name == "gaussian":
        return testing.gaussian_problem(8, 2, seed, sigma=0.5)
    return testing.mcgdiff_problem(8, 2, seed)


def run(problems: Sequence[str], nfes: Sequence[int], seeds: Sequence[int], n: int) -> list[dict]:
    """One row per (problem, method, sampler, NFE) with the median SW over seeds."""
    rows = []
    for pname in problems:
        cells = []
        for seed in seeds:
            gp = _problem(pname, seed)
            prior = DiffusionPrior.from_gmm(gp.prior, VPDiffusion())
            ref = gp.posterior.sample(n, generator=torch.Generator().manual_seed(100 + seed))
            floor = testing.noise_floor(gp.posterior, n, seed=seed)
            cells.append((gp, prior, ref, floor))
        for method in METHODS:
            compatible = set(get_method(method).compatible_samplers(cells[0][1])) | {"ddpm"}
            for sampler in SAMPLERS:
                if sampler not in compatible:
                    continue
                for nfe in nfes:
                    sws, wall, measured = [], 0.0, set()
                    for seed, (gp, prior, ref, _) in zip(seeds, cells, strict=True):
                        res = solve(gp.problem, prior, method, sampler=sampler, steps=nfe, n_samples=n, seed=seed)
                        measured.add(res.nfe)
                        wall += res.wall_time
                        sws.append(testing.sliced_w1(res.samples, ref, generator=torch.Generator().manual_seed(0)))
                    rows.append({"problem": pname, "method": method, "sampler": sampler, "nfe": nfe,
                                 "measured_nfe": sorted(measured), "sw_median": statistics.median(sws),
                                 "sw": sws, "floor_median": statistics.median(c[3] for c in cells),
                                 "wall_s": wall})
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    """One table per (problem, method): samplers × NFE, median SW (best per column in bold)."""
    header = (f"n = {meta['n']} samples, seeds {meta['seeds']}, uniform grid on VP; sliced W1 to exact posterior "
              "samples (median over seeds; lower is better). ΠGDM's default η for `ddim` is 1 (its paper setting), "
              "so its `ddim` row equals `ddpm`. Written by `experiments/bench_inverse_samplers.py`.")
    lines = ["# Guidance through any sampler (DPS, ΠGDM × registered samplers)", "", header, ""]
    for pname in meta["problems"]:
        for method in METHODS:
            sub = [r for r in rows if r["problem"] == pname and r["method"] == method]
            if not sub:
                continue
            nfes = sorted({r["nfe"] for r in sub})
            floor = sub[0]["floor_median"]
            lines += [f"## {pname} — {method} (noise floor {floor:.3f})", "",
                      "| sampler | " + " | ".join(f"NFE {k}" for k in nfes) + " |",
                      "|---|" + "---|" * len(nfes)]
            best = {k: min(r["sw_median"] for r in sub if r["nfe"] == k) for k in nfes}
            for sampler in dict.fromkeys(r["sampler"] for r in sub):
                cells = []
                for k in nfes:
                    v = next(r["sw_median"] for r in sub if r["sampler"] == sampler and r["nfe"] == k)
                    cells.append(f"**{v:.3f}**" if v == best[k] else f"{v:.3f}")
                lines.append(f"| {sampler} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--n", type=int, default=500, help="samples per run (and exact posterior samples)")
    parser.add_argument("--seeds", type=int, default=3, help="number of problem seeds")
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 20, 50], help="NFE budgets (= steps)")
    parser.add_argument("--problems", nargs="+", default=["gaussian", "mcgdiff"], choices=["gaussian", "mcgdiff"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    seeds = list(range(args.seeds))
    rows = run(args.problems, args.nfe, seeds, args.n)
    meta = {"n": args.n, "seeds": seeds, "nfe": args.nfe, "problems": args.problems, "torch": torch.__version__,
            "python": platform.python_version(), "seconds": round(time.perf_counter() - start, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inverse_samplers.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / "inverse_samplers.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
