"""Multimarginal generative modeling (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24) at CPU scale.

Two claims of the paper are checked:

1. **One model for all pairs.** One simplex network with K + 1 heads g_k (K = 3 data marginals + the Gaussian),
   trained once through ``genlab.train`` (objective ``multimarginal``), transports between every pair of marginals
   (edge e_i → e_j, velocity g_j − g_i). It is compared, pair by pair, with K(K−1)/2 = 3 separately trained
   two-marginal interpolants (the same path x_t = (1 − t)x_i + t x_j on independent pairs, velocity regression,
   a network of the same size trained with the same steps, batch and optimiser each; so the three baselines
   together use three times the multimarginal model's budget). Quality: sliced Wasserstein distance (SW) of the
   transported held-out source samples to the held-out target marginal, over sample seeds (disjoint halves of the
   held-out source), against the data floor (training split vs held-out), with genlab's intervals and verdicts.
2. **Optimised paths lower the transport cost.** With the g_k frozen, a FourierPath from each edge is optimised
   (``genlab.training.optimize_path``); the Monte-Carlo transport cost C[a] = ∫ E|Σ_k ȧ_k g_k|² dt of the linear
   edge and of the optimised path are reported (same evaluation draws), with the SW of the transport along each.

Families: 2-D toys (moons, 8 Gaussians, checkerboard; MLPs) and digit classes 0, 1, 7 of scikit-learn's 8×8
digits (small U-Nets). Pictures: the transports of every pair, and the correspondence grid (one row per source
sample, one column per marginal).

Run: ``python experiments/bench_multimarginal.py`` (about 10 minutes on 2 CPU cores; ``--quick``
for a smoke run). Results: ``experiments/results/multimarginal.{json,md,png}`` and
``multimarginal_correspondence.png``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from genlab.interpolants import EdgePath, FourierPath, StochasticInterpolant
from genlab.metrics.uncertainty import compare
from genlab.models import Field
from genlab.training import LossOutput, ObjectiveBase, Trainer, load_run, sample_times, train
from genlab.training.evaluation import data_floors, metric_reports
from genlab.training.multimarginal import correspondence, marginal_draws, optimize_path, path_cost, transport

RESULTS = Path(__file__).resolve().parent / "results"

FAMILIES: dict[str, dict[str, Any]] = {
    "toys": {
        "marginals": ["moons", "8gaussians", "checkerboard"],
        "data": {"n": 20000, "seed": 0, "test_fraction": 0.1},
        "mm_model": {"name": "simplex_mlp", "data_dim": 2, "K": 3, "hidden": 256, "depth": 3},
        "pair_model": {"name": "mlp", "dim": 2, "hidden": 256, "depth": 3, "kind": "velocity"},
        "train": {"steps": 2500, "batch_size": 512, "lr": 2e-3, "warmup": 100, "schedule": "cosine",
                  "min_lr_ratio": 0.05, "ema_decay": 0.999},
        "sample_steps": 50,
        "metrics": ["sw"],
    },
    "digits": {
        "marginals": ["digits:0", "digits:1", "digits:7"],
        "data": {"test_fraction": 0.5},
        "mm_model": {"name": "simplex_unet", "K": 3, "sample_size": 8, "channels": 1,
                     "block_out_channels": [32, 64]},
        "pair_model": {"name": "unet", "sample_size": 8, "in_channels": 1, "out_channels": 1,
                       "block_out_channels": [32, 64], "kind": "velocity"},
        "train": {"steps": 800, "batch_size": 64, "lr": 2e-3, "warmup": 100, "schedule": "cosine",
                  "ema_decay": 0.995},
        "sample_steps": 30,
        "metrics": ["sw", "fd"],
    },
}


class EdgeObjective(ObjectiveBase):
    """Baseline: a two-marginal interpolant x_t = (1 − t)x_i + t x_j (γ = 0, independent pairs) between two
    columns of the multimarginal data set, velocity regression (reference/interpolants.md §1.3)."""

    def __init__(self, config: Any, components: Any, *, i: int, j: int) -> None:
        self.config, self.components, self.i, self.j = config, components, i, j
        self.interpolant = StochasticInterpolant("linear", gamma="zero", source="data")

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.components.net}

    def field(self, *, ema: bool = True) -> Field:
        return Field(self.module("model", ema=ema) if ema else self.components.net, self.interpolant, "velocity")

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        return {"model": self.field(ema=ema)}

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        pair = self.components.coupling.sample(batch, generator=generator)
        xa, xb = pair.x1[:, self.i - 1], pair.x1[:, self.j - 1]
        t = sample_times(xa.shape[0], generator=generator, device=xa.device)
        path = self.interpolant.sample(xa, xb, t, generator=generator)
        pred = Field(self.module("model"), self.interpolant, "velocity")(path.x_t, path.t)
        return LossOutput(loss=self.interpolant.loss(pred, path, "velocity"), batch_size=int(xa.shape[0]))


def _config(fam: dict[str, Any], *, multimarginal: bool, steps: int) -> dict[str, Any]:
    model = dict(fam["mm_model"] if multimarginal else fam["pair_model"])
    cfg = {
        "name": "mm" if multimarginal else "pair",
        "data": {"name": "multimarginal", "marginals": fam["marginals"], **fam["data"]},
        "interpolant": ({"name": "multimarginal", "K": 3, "edge_prob": 0.5} if multimarginal
                        else {"name": "stochastic", "path": "linear", "gamma": "zero", "source": "data"}),
        "coupling": {"name": "multimarginal"},
        "model": model,
        "train": {**fam["train"], "steps": steps, "log_every": max(steps // 4, 1), "ckpt_every": steps,
                  "seed": 0},
        "sample": {"sampler": "heun", "steps": fam["sample_steps"], "n": 64},
        "logging": {"progress": False, "stdout": False},
    }
    if multimarginal:
        cfg["objective"] = {"name": "multimarginal"}
    return cfg


def _eval_sets(field_fn: Any, src: torch.Tensor, seeds: int) -> list[torch.Tensor]:
    """Transport ``seeds`` disjoint parts of the held-out source (one sample set per part); images are clipped to
    the data range [-1, 1] (the usual image post-processing; the digits FD refuses values far outside it)."""
    n = src.shape[0] // seeds
    sets = [field_fn(src[s * n:(s + 1) * n]) for s in range(seeds)]
    return [x.clamp(-1, 1) if x.ndim == 4 else x for x in sets]


def _log(msg: str, t0: float) -> None:
    print(f"  [{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def run_family(name: str, fam: dict[str, Any], *, steps: int, seeds: int, work: Path, opt_steps: int) -> dict:
    t_start = time.perf_counter()
    out: dict[str, Any] = {"marginals": fam["marginals"], "steps": steps, "seeds": seeds}
    t0 = time.perf_counter()
    train(_config(fam, multimarginal=True, steps=steps), out=work / f"{name}_mm", overwrite=True)
    out["mm_train_seconds"] = time.perf_counter() - t0
    _log(f"{name}: multimarginal model trained", t_start)
    run = load_run(work / f"{name}_mm")
    fld, comp = run.field, run.components
    test, train_pool = comp.split.test.tensors[0], comp.split.train.tensors[0]
    K = 3
    pairs = list(itertools.combinations(range(1, K + 1), 2))
    baselines: dict[tuple[int, int], Field] = {}
    out["pair_train_seconds"] = {}
    for i, j in pairs:
        t0 = time.perf_counter()
        trainer = Trainer(_config(fam, multimarginal=False, steps=steps), work / f"{name}_pair{i}{j}",
                          objective=lambda c, cp, i=i, j=j: EdgeObjective(c, cp, i=i, j=j))
        trainer.fit()
        baselines[(i, j)] = trainer.objective.field(ema=True).eval()
        out["pair_train_seconds"][f"{i}-{j}"] = time.perf_counter() - t0
        _log(f"{name}: pairwise model {i}-{j} trained", t_start)
    sample_steps = fam["sample_steps"]
    floors = {j: data_floors(fam["metrics"], train_pool[:, j - 1], test[:, j - 1],
                             n=test.shape[0] // seeds, draws=5) for j in range(1, K + 1)}
    _log(f"{name}: floors", t_start)
    rows = []
    pictures: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for i, j in itertools.permutations(range(1, K + 1), 2):
            src, ref = test[:, i - 1], test[:, j - 1]
            mm_sets = _eval_sets(lambda x, i=i, j=j: transport(fld, x, path=EdgePath(i, j, K), steps=sample_steps).x,
                                 src, seeds)
            mm = metric_reports(mm_sets, train_pool[:, j - 1], ref, fam["metrics"], floors=floors[j])
            row: dict[str, Any] = {"from": i, "to": j, "multimarginal": {m: r.to_dict() for m, r in mm.items()}}
            pictures[f"{i}->{j}"] = mm_sets[0]
            if (i, j) in baselines:
                from genlab.samplers import sample

                bsets = _eval_sets(lambda x, i=i, j=j: sample(baselines[(i, j)], "heun", steps=sample_steps,
                                                              x_init=x).x, src, seeds)
                base = metric_reports(bsets, train_pool[:, j - 1], ref, fam["metrics"], floors=floors[j])
                row["pairwise"] = {m: r.to_dict() for m, r in base.items()}
                row["mm_vs_pairwise"] = {m: compare(mm[m].model, base[m].model, reference="pairwise model",
                                                    lower_is_better=not base[m].higher_is_better).text
                                         for m in base}
            rows.append(row)
        # generation from the Gaussian vertex, for reference
        for j in range(1, K + 1):
            z = torch.randn((test.shape[0], *test.shape[2:]), generator=torch.Generator().manual_seed(j))
            sets = _eval_sets(lambda x, j=j: transport(fld, x, path=EdgePath(0, j, K), steps=sample_steps).x, z,
                              seeds)
            rep = metric_reports(sets, train_pool[:, j - 1], test[:, j - 1], fam["metrics"], floors=floors[j])
            rows.append({"from": 0, "to": j, "multimarginal": {m: r.to_dict() for m, r in rep.items()}})
    out["transport"] = rows
    _log(f"{name}: transports evaluated", t_start)
    # path optimisation with frozen g_k
    draw = marginal_draws(comp, split="test")
    eval_t = (torch.arange(32, dtype=torch.float64) + 0.5) / 32
    eval_xs = draw(8192 if name == "toys" else 2048, torch.Generator().manual_seed(123))
    net = fld.net.net
    opt_rows = []
    for i, j in [(0, 1), (0, 3), *pairs]:
        res = optimize_path(net, i, j, K, draw, modes=4, steps=opt_steps if name == "toys" else opt_steps * 2 // 3,
                            lr=0.05, n=1024 if name == "toys" else 128, times=32, eval_n=2048, seed=7)
        with torch.no_grad():
            c_edge = float(path_cost(net, EdgePath(i, j, K), eval_xs, t=eval_t))
            c_init = float(path_cost(net, FourierPath.fit(EdgePath(i, j, K), modes=4), eval_xs, t=eval_t))
            c_opt = float(path_cost(net, res.path, eval_xs, t=eval_t))
            src = (torch.randn((test.shape[0], *test.shape[2:]), generator=torch.Generator().manual_seed(99))
                   if i == 0 else test[:, i - 1])
            rep = {}
            for label, path in (("edge", EdgePath(i, j, K)), ("optimised", res.path)):
                sets = _eval_sets(lambda x, path=path: transport(fld, x, path=path, steps=sample_steps).x, src, seeds)
                rep[label] = metric_reports(sets, train_pool[:, j - 1], test[:, j - 1], fam["metrics"],
                                            floors=floors[j])
                if label == "optimised":
                    pictures[f"opt {i}->{j}"] = sets[0]
        a, _ = res.path(torch.linspace(0, 1, 11, dtype=torch.float64))
        _log(f"{name}: path {i}->{j} optimised", t_start)
        opt_rows.append({
            "from": i, "to": j, "cost_edge": c_edge, "cost_fourier_init": c_init, "cost_optimised": c_opt,
            "path_a": a.tolist(),
            "quality_edge": {m: r.to_dict() for m, r in rep["edge"].items()},
            "quality_optimised": {m: r.to_dict() for m, r in rep["optimised"].items()},
        })
    out["path_optimisation"] = opt_rows
    _log(f"{name}: paths optimised", t_start)
    # correspondence: the same source samples pushed to every marginal
    src_idx = torch.arange(8)
    grid = correspondence(fld, test[src_idx, 0], 1, steps=sample_steps) if name == "digits" else correspondence(
        fld, test[:400, 0], 1, steps=sample_steps)
    out["seconds"] = time.perf_counter() - t_start
    return {"summary": out, "pictures": pictures, "grid": grid, "test": test}


# ---------------------------------------------------------------------------------------------- reporting
def _fmt(rep: dict[str, Any], m: str) -> str:
    r = rep[m]
    model = r["model"]
    return f"{model['mean']:.4f} ± {(model['high'] - model['low']) / 2:.4f}"


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Multimarginal stochastic interpolants (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24)", "",
             ("Generated by `experiments/bench_multimarginal.py`. Vertex 0 is the Gaussian; vertices 1..3 the data "
              "marginals listed per family. Values are mean ± 95 % half-width over sample seeds (disjoint parts of "
              "the held-out source); the floor is the same metric between training and held-out data of the target "
              "(5 disjoint draws); the verdict compares each model with its floor."), ""]
    for fam, res in results.items():
        s = res
        lines += [f"## {fam}: marginals {s['marginals']}", "",
                  (f"Training: {s['steps']} steps each; multimarginal model {s['mm_train_seconds']:.0f} s, pairwise "
                   f"models {', '.join(f'{k}: {v:.0f} s' for k, v in s['pair_train_seconds'].items())}."), ""]
        metrics = list(s["transport"][0]["multimarginal"])
        for m in metrics:
            lines += [f"### {m.upper()} of transported samples to the held-out target", "",
                      ("| from → to | one multimarginal model | verdict | pairwise model (one per pair) | verdict | "
                       "multimarginal vs pairwise | data floor |"), "|---|---|---|---|---|---|---|"]
            for row in s["transport"]:
                mm = row["multimarginal"][m]
                floor = f"{mm['floor']['mean']:.4f} ± {(mm['floor']['high'] - mm['floor']['low']) / 2:.4f}"
                if "pairwise" in row:
                    pw = row["pairwise"][m]
                    pws, pwv = _fmt(row["pairwise"], m), pw["verdict"]
                else:
                    pws, pwv = ("—", "not trained (reverse direction)" if row["from"] else "—")
                vs = row.get("mm_vs_pairwise", {}).get(m, "—")
                lines.append(f"| {row['from']} → {row['to']} | {_fmt(row['multimarginal'], m)} | "
                             f"{mm['verdict']} | {pws} | {pwv} | {vs} | {floor} |")
            lines.append("")
        lines += ["### Path optimisation with frozen g_k (FourierPath, 4 sine modes per vertex)", "",
                  "| from → to | cost, linear edge | cost, Fourier fit of the edge (start) | cost, optimised | change vs edge | "
                  + " | ".join(f"{m.upper()} edge | {m.upper()} optimised" for m in metrics) + " |",
                  "|---|---|---|---|---|" + "---|---|" * len(metrics)]
        for row in s["path_optimisation"]:
            change = 100 * (row["cost_optimised"] / row["cost_edge"] - 1)
            qual = " | ".join(f"{_fmt(row['quality_edge'], m)} | {_fmt(row['quality_optimised'], m)}"
                              for m in metrics)
            lines.append(f"| {row['from']} → {row['to']} | {row['cost_edge']:.3f} | {row['cost_fourier_init']:.3f} | "
                         f"{row['cost_optimised']:.3f} | {change:+.1f} % | {qual} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def pictures(results: dict[str, dict[str, Any]], path: Path, grid_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    toys = results.get("toys")
    if toys is not None:
        keys = list(toys["pictures"])
        cols = 4
        rows = math.ceil((len(keys) + 3) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows))
        axes = axes.ravel()
        test = toys["test"]
        for k in range(3):
            axes[k].scatter(test[:800, k, 0], test[:800, k, 1], s=1)
            axes[k].set_title(f"data, vertex {k + 1}", fontsize=8)
        for ax, key in zip(axes[3:], keys):
            x = toys["pictures"][key]
            ax.scatter(x[:800, 0], x[:800, 1], s=1, color="C1" if key.startswith("opt") else "C0")
            ax.set_title(f"toys {key}", fontsize=8)
        for ax in axes:
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlim(-4.5, 4.5), ax.set_ylim(-4.5, 4.5)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), gridspec_kw={"width_ratios": [1, 1]})
    if toys is not None:  # correspondence: points coloured by source position, shown at every vertex
        g = toys["grid"]
        color = torch.atan2(g[:, 1, 1], g[:, 1, 0])
        for k in range(4):
            axes[0].scatter(g[:, k, 0] + 9 * k, g[:, k, 1], c=color, s=2, cmap="hsv")
        axes[0].set_title("toys: one source (moons) pushed to vertices 0..3 (colour = source angle)", fontsize=8)
        axes[0].set_xticks([]), axes[0].set_yticks([])
    digits = results.get("digits")
    if digits is not None:
        g = digits["grid"]  # (8, 4, 1, 8, 8): one row per source digit, one column per vertex
        img = g[:, :, 0].permute(0, 2, 1, 3).reshape(g.shape[0] * 8, 4 * 8)
        axes[1].imshow(img.clamp(-1, 1), cmap="gray")
        axes[1].set_title("digits: rows = source '0'; columns = vertex 0 (Gaussian), '0', '1', '7'", fontsize=8)
        axes[1].set_xticks([]), axes[1].set_yticks([])
    fig.tight_layout()
    fig.savefig(grid_path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (few steps; results not written)")
    ap.add_argument("--families", default="toys,digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: no contention on a shared machine)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "genlab_bench_multimarginal.pt"),
                    help="where the raw results (tensors for the pictures) are kept for --report-only")
    ap.add_argument("--report-only", action="store_true", help="rebuild the Markdown and pictures from --cache")
    args = ap.parse_args(argv)
    if args.report_only:
        report(torch.load(args.cache, weights_only=False), Path(args.out))
        return 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fam in args.families.split(","):
            spec = copy.deepcopy(FAMILIES[fam])
            steps = 30 if args.quick else spec["train"]["steps"]
            t0 = time.perf_counter()
            results[fam] = run_family(fam, spec, steps=steps, seeds=args.seeds, work=Path(tmp),
                                      opt_steps=10 if args.quick else 150)
            print(f"{fam}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out = Path(args.out)
    if not args.quick:  # the numbers and the picture tensors first, so a reporting error loses nothing
        out.mkdir(parents=True, exist_ok=True)
        (out / "multimarginal.json").write_text(json.dumps({k: v["summary"] for k, v in results.items()}, indent=1))
        torch.save(results, args.cache)
    report(results, out, write=not args.quick)
    return 0


def report(results: dict[str, dict[str, Any]], out: Path, *, write: bool = True) -> None:
    """Markdown table and pictures from the results (or from ``--cache`` with ``--report-only``)."""
    md = markdown({k: v["summary"] for k, v in results.items()})
    print(md)
    if write:
        (out / "multimarginal.md").write_text(md)
        pictures(results, out / "multimarginal.png", out / "multimarginal_correspondence.png")


if __name__ == "__main__":
    raise SystemExit(main())
