"""Timing of the exact GMM oracle before and after issue 13 (``genlab.analytic.posterior_means``).

"Before" is the pre-issue implementation kept as ``genlab.analytic._oracle_reference`` (one broadcast triangular
solve per sample, component pair and time); "after" is the structure-aware oracle (isotropic/diagonal closed form,
one Cholesky factor per pair and time with all samples as right-hand sides). Each case times one forward call of
the exact ``x1`` prediction plus its VJP (``autograd.grad`` of ``<x̂1, v>``), as a guided solve needs, and checks the
two agree (max |Δ| over x̂1 and the VJP). Timings are repeated draws (``--repeats``) reported as mean ± 95 % CI
(``genlab.metrics.uncertainty.estimate``); the machine is shared, so absolute numbers carry its load.

Command:
    OMP_NUM_THREADS=1 .venv/bin/python experiments/bench_gmm_oracle.py --out experiments/results --repeats 10 \
        --repeats-before 1

Writes ``inverse_gmm_oracle.json`` and ``inverse_gmm_oracle.md`` (atomically). Budget: ~2 min on one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from genlab.analytic import ConditionalGMM, GaussianMixture, posterior_means
from genlab.analytic._oracle_reference import reference_posterior_means
from genlab.interpolants import DiffusionBridge, StochasticInterpolant, VPDiffusion
from genlab.metrics.uncertainty import Estimate, estimate
from genlab.utils import atomic_write

DT = torch.float64


@dataclass
class Case:
    """One timed configuration."""

    name: str
    n: int
    d: int
    k: int
    cov: str
    path: str


CASES = [
    Case("issue call: VP, Gaussian source, isotropic", 2000, 80, 25, "iso", "vp"),
    Case("VP, Gaussian source, diagonal", 2000, 80, 25, "diag", "vp"),
    Case("VP, Gaussian source, full (n = 200)", 200, 80, 25, "full", "vp"),
    Case("bridge (DDBM VP), isotropic, x1 given x0", 2000, 80, 25, "iso", "bridge"),
    Case("two-sided SI, 4 × 25 isotropic (n = 200)", 200, 80, 25, "iso", "two"),
    Case("two-sided SI, 4 × 25 isotropic (n = 2000, after only)", 2000, 80, 25, "iso", "two-big"),
]


def _mixture(cov: str, k: int, d: int, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = 8.0 * torch.randn(k, d, generator=g, dtype=DT)
    if cov == "iso":
        covs = torch.rand(k, generator=g, dtype=DT) + 0.5
    elif cov == "diag":
        covs = torch.rand(k, d, generator=g, dtype=DT) + 0.5
    else:
        a = torch.randn(k, d, d, generator=g, dtype=DT) / d**0.5
        covs = a @ a.transpose(-1, -2) + 0.5 * torch.eye(d, dtype=DT)
    return GaussianMixture(means, covs)


def _call(fn: Callable, case: Case) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    tgt = _mixture(case.cov, case.k, case.d, 0)
    x = 8.0 * torch.randn(case.n, case.d, generator=g, dtype=DT)
    v = torch.randn(case.n, case.d, generator=g, dtype=DT)
    t = torch.full((case.n,), 0.5, dtype=DT)
    kw: dict = {}
    if case.path == "vp":
        interp, kw = VPDiffusion(), {"source": "gaussian", "target": tgt}
    elif case.path == "bridge":
        interp = DiffusionBridge("vp")
        kw = {"source": None, "target": ConditionalGMM(tgt, 0.5), "x0": torch.randn(case.n, case.d, generator=g,
                                                                                     dtype=DT)}
    else:
        interp = StochasticInterpolant("linear", gamma="brownian")
        kw = {"source": _mixture("iso", 4, case.d, 3), "target": tgt}

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        xg = x.clone().requires_grad_(True)
        out = fn(interp, xg, t, **kw).x1
        (grad,) = torch.autograd.grad((out * v).sum(), xg)
        return out.detach(), grad

    return run


def _time(run: Callable, repeats: int) -> tuple[Estimate, tuple[torch.Tensor, torch.Tensor]]:
    res = run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        res = run()
        times.append(time.perf_counter() - start)
    return estimate(times), res


def main(argv: list[str] | None = None) -> None:
    """Time every case before/after and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="experiments/results")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--repeats-before", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for case in CASES:
        after, (o_new, g_new) = _time(_call(posterior_means, case), args.repeats)
        row = {"case": case.name, "n": case.n, "d": case.d, "k": case.k, "cov": case.cov, "path": case.path,
               "after_s": after.to_dict(), "before_s": None, "speedup": None, "max_rel_diff": None}
        if not case.path.endswith("-big"):
            before, (o_old, g_old) = _time(_call(reference_posterior_means, case), args.repeats_before)
            diff = max(float((o_new - o_old).abs().max() / o_old.abs().max()),
                       float((g_new - g_old).abs().max() / g_old.abs().max()))
            row.update(before_s=before.to_dict(), speedup=before.mean / after.mean, max_rel_diff=diff)
        rows.append(row)
        print(row["case"], row["after_s"]["mean"], row["before_s"] and row["before_s"]["mean"], flush=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "command": ("OMP_NUM_THREADS=1 .venv/bin/python experiments/bench_gmm_oracle.py --out experiments/results "
                        f"--repeats {args.repeats} --repeats-before {args.repeats_before}"),
            "repeats": args.repeats, "repeats_before": args.repeats_before}
    out = Path(args.out)
    with atomic_write(out / "inverse_gmm_oracle.json", "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    lines = ["# Exact GMM oracle: before / after issue 13", "",
             f"Command: `{meta['command']}`", "",
             (f"One call of the exact `x1` prediction (`posterior_means`) **plus its VJP**, float64, torch "
              f"{meta['torch']} on {meta['threads']} thread, t = 0.5 (shared 2-core machine under load: absolute "
              "seconds carry the load, so the fastest repeat is shown too; the ratio is the point). Seconds: mean ± 95 % CI over "
              f"{args.repeats} (after) / {args.repeats_before} (before) repeats. Max rel Δ = largest difference of "
              "x̂1 and of the VJP between the two implementations, relative to the largest entry."), "",
             "| case | n | d | K | before (s) | after (s) | after, fastest repeat (s) | speed-up | max rel Δ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = estimate(r["after_s"]["values"]).format()
        b = estimate(r["before_s"]["values"]).format() if r["before_s"] else "—"
        sp = f"{r['speedup']:.0f}×" if r["speedup"] else "—"
        df = f"{r['max_rel_diff']:.1e}" if r["max_rel_diff"] is not None else "—"
        fastest = min(r["after_s"]["values"])
        lines.append(f"| {r['case']} | {r['n']} | {r['d']} | {r['k']} | {b} | {a} | {fastest:.3f} | {sp} | {df} |")
    lines += ["", ("Full-covariance and two-sided 'before' timings use n = 200: the old broadcast solve "
                   "materialises an (n, K0, K1, d, d) factor (≈ 2.6 GB at n = 2000, d = 80, K = 25)."), ""]
    with atomic_write(out / "inverse_gmm_oracle.md", "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
