"""Train every 2-D toy config in ``configs/`` with ``genlab.training.train`` and score it against held-out data.

What runs (one process, ``torch.set_num_threads(1)``):

* the config list is read from ``configs/*.yaml``; a file is kept when it loads as a run config
  (:func:`genlab.training.load_config`) and its dataset is a 2-D toy (``genlab.data.TOY_NAMES``). Skipped, with
  the reason written to the results: files that are not run configs (extra sections), image configs, and the
  smoke-test config ``moons_tiny`` (a seconds-long run for tests, see its header);
* each kept config is trained through the Python API behind ``genlab train`` —
  ``train(config, out=..., overrides=[...])`` — with ONE uniform change to the budget: ``train.steps`` is set to
  ``--steps`` for every config (default 3000; ``--steps config`` keeps each config's own budget). The LR schedule
  (warm-up + cosine) follows ``train.steps``, so a shorter budget is a complete, shorter schedule. Other
  overrides only switch off side work: ``train.sample_every=0`` (no periodic pictures), ``train.ckpt_every=0``
  (final checkpoint only), ``train.device=cpu``, no progress bar / stdout records;
* the run is scored with :func:`genlab.training.evaluate` (the EMA weights of the final checkpoint, the config's
  own sampler/steps/grid) — the same code and the same table as ``genlab eval``: ``n`` = 2000 samples per seed,
  3 sample seeds, vs the held-out split of the SAME dataset (``data.n = 20000``, ``test_fraction = 0.1`` → 2000
  points), with sliced W2 (256 directions), MMD (median-heuristic RBF mixture), energy distance, k-NN
  precision/recall (k = 3) and a classifier two-sample test (C2ST, 0.5 = indistinguishable). Every metric has
  its data floor over 5 disjoint subsets of 2000 training points, both reported as mean ± 95 % interval, and a
  Welch verdict ("within noise of the data" / "worse than data by k intervals"). The raw (non-EMA) weights are
  scored too (SW only, one seed) to show what the EMA does at this budget.

Outputs: ``experiments/results/training_moons.{json,md,png}`` (one scatter panel per config: held-out data in
grey, samples in colour). Run folders go to ``--runs`` (default ``out/train_moons_configs``, git-ignored).

Run: ``python experiments/train_moons_configs.py [--steps 3000|config] [--only NAME ...]``. About 8–12 min for
the 7 configs at 3000 steps on 2 shared CPU cores (the wall time and the machine load are recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from genlab.config import ConfigError
from genlab.data import TOY_NAMES
from genlab.training import draw_samples, evaluate, load_config, load_run, reference_data, train
from genlab.training.evaluation import sample_metrics
from genlab.utils import atomic_write
from genlab.viz import require_matplotlib, save_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
#: Configs that are run configs on a toy dataset but not a training budget to report.
SMOKE_CONFIGS = {"moons_tiny": "smoke-test config (seconds-long run for tests; see its header)"}
METRICS = ("sw", "mmd", "energy", "precision", "recall", "c2st")
N_FLOOR_DRAWS = 5
N_SAMPLE_SEEDS = 3


def discover(config_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """The toy run configs in ``config_dir`` and ``{file stem: reason}`` for the skipped files."""
    kept: list[Path] = []
    skipped: dict[str, str] = {}
    for path in sorted(config_dir.glob("*.yaml")):
        stem = path.stem
        if stem in SMOKE_CONFIGS:
            skipped[stem] = SMOKE_CONFIGS[stem]
            continue
        try:
            cfg = load_config(path)
        except (ConfigError, TypeError, ValueError) as err:
            skipped[stem] = f"not a run config ({str(err).splitlines()[0][:120]})"
            continue
        if cfg.data.name not in TOY_NAMES:
            skipped[stem] = f"dataset {cfg.data.name!r} is not a 2-D toy"
            continue
        kept.append(path)
    return kept, skipped


def describe(cfg: Any) -> dict[str, Any]:
    """A short description of a config's path, coupling, model and sampler."""
    ikw = ", ".join(f"{k}={v}" for k, v in cfg.interpolant.kwargs.items())
    ckw = ", ".join(f"{k}={v}" for k, v in cfg.coupling.kwargs.items())
    return {
        "dataset": cfg.data.name,
        "interpolant": cfg.interpolant.name + (f"({ikw})" if ikw else ""),
        "coupling": cfg.coupling.name + (f"({ckw})" if ckw else ""),
        "kind": cfg.model.kind + (f" + {cfg.model.precond}" if cfg.model.precond != "none" else ""),
        "model": f"{cfg.model.name} " + ", ".join(f"{k}={v}" for k, v in cfg.model.kwargs.items()),
        "sampler": cfg.sample.sampler,
        "sampler_steps": cfg.sample.steps,
        "grid": cfg.sample.grid,
        "batch_size": cfg.train.batch_size,
        "lr": cfg.train.lr,
        "ema_decay": cfg.train.ema_decay,
    }


def _draw(run: Any, n: int, seed: int) -> Any:
    scfg = run.config.sample
    return draw_samples(
        run.field,
        run.components,
        sampler=scfg.sampler,
        steps=scfg.steps,
        n=n,
        seed=seed,
        grid=scfg.grid,
        grid_options=scfg.grid_options,
        options=scfg.options,
    )


def raw_weights_sw(run_dir: Path, n: int, seed: int) -> float:
    """SW2 of the raw (non-EMA) weights with the config's sampler, same seed as the EMA evaluation."""
    run = load_run(run_dir, ema=False)
    smp = _draw(run, n, seed)
    split = run.components.split
    return sample_metrics(smp, split.train, split.test, ["sw"], n_projections=256, seed=seed)["sw"]


def run_one(path: Path, steps: int | None, runs_dir: Path, n: int, seed: int) -> dict[str, Any]:
    """Train one config, evaluate it, and return its row (samples kept for the figure)."""
    name = path.stem
    out = runs_dir / name
    if out.exists():
        shutil.rmtree(out)
    overrides = [
        "train.sample_every=0",
        "train.ckpt_every=0",
        "train.eval_every=0",
        "train.device=cpu",
        "logging.progress=false",
        "logging.stdout=false",
        f"eval.n={n}",
    ]
    if steps is not None:
        overrides.insert(0, f"train.steps={steps}")
    cfg = load_config(path, overrides=overrides)
    own_steps = load_config(path).train.steps
    print(f"[{name}] training {cfg.train.steps} steps ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    result = train(path, out=out, overrides=overrides)
    t_train = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = load_run(out)
    ev = evaluate(run, n=n, seed=seed, seeds=N_SAMPLE_SEEDS, metrics=[*METRICS, "val_loss"])
    t_eval = time.perf_counter() - t1
    x_first = _draw(run, n, seed).x.cpu()  # seed 0 = the first of the sample sets evaluate() scored
    held_out = reference_data(run.components.split.test)
    row: dict[str, Any] = {
        "config": name,
        **describe(cfg),
        "config_steps": own_steps,
        "steps": result.step,
        "train_seconds": round(result.seconds, 2),
        "train_wall_seconds": round(t_train, 2),
        "steps_per_s": round(result.step / result.seconds, 2),
        "final_train_loss": result.loss,
        "eval_seconds": round(t_eval, 2),
        "nfe": ev.nfe,
        "n_samples": ev.n,
        "n_held_out": int(held_out.shape[0]),
        "metrics": {k: float(v) for k, v in ev.metrics.items()},
        "reports": {k: r.to_dict() for k, r in ev.reports.items()},
        "verdict": ev.verdict,
        "sw_raw_weights": raw_weights_sw(out, n, seed),
        "command": (
            f"genlab train configs/{path.name} --out {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
            + " ".join(f"--set {o}" for o in overrides)
        ),
    }
    print(f"[{name}] {result.seconds:.0f}s ({row['steps_per_s']} it/s)\n{ev.table()}", file=sys.stderr, flush=True)
    row["_samples"] = x_first
    row["_held_out"] = held_out
    return row


def _cell(est: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    half = 0.5 * (est["high"] - est["low"])
    return f"{scale * est['mean']:.{digits}f} ± {scale * half:.{digits}f}"


def figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """One panel per config: held-out data (grey) and samples (colour)."""
    plt = require_matplotlib()
    k = len(rows)
    ncol = min(4, k)
    nrow = (k + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.5 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, row in zip(axes.flat, rows):
        ax.set_axis_on()
        ref, x = row["_held_out"], row["_samples"]
        ax.scatter(ref[:, 0], ref[:, 1], s=1.5, c="0.7", alpha=0.6, label="held-out")
        ax.scatter(x[:, 0], x[:, 1], s=1.5, c="tab:blue", alpha=0.6, label="samples")
        lo = torch.quantile(ref, 0.002, dim=0) - 0.5
        hi = torch.quantile(ref, 0.998, dim=0) + 0.5
        ax.set_xlim(float(lo[0]), float(hi[0]))
        ax.set_ylim(float(lo[1]), float(hi[1]))
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        rep = row["reports"]
        ax.set_title(
            f"{row['config']}\n{row['sampler']} {row['nfe']} NFE, {row['steps']} steps\n"
            f"SW2 {_cell(rep['sw']['model'])} (floor {_cell(rep['sw']['floor'])})\n"
            f"precision {rep['precision']['model']['mean']:.3f}, recall {rep['recall']['model']['mean']:.3f}",
            fontsize=7,
        )
    axes.flat[0].legend(loc="lower left", fontsize=7, markerscale=4)
    fig.suptitle(
        "genlab train: 2-D toy configs, EMA weights, 2000 samples vs 2000 held-out points", fontsize=10
    )
    return save_figure(fig, path)


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], skipped: dict[str, str]) -> str:
    """The results table."""
    lines = [
        "# Training the 2-D toy configs (`genlab train`, EMA weights)",
        "",
        (
            f"Generated by `experiments/train_moons_configs.py {meta['argv']}` ({meta['date']}, total wall "
            f"{meta['total_wall_seconds']:.0f} s). torch {meta['torch']}, **torch threads = 1**, {meta['cpus']} CPU "
            f"cores shared with other jobs (load average {meta['load_start'][0]:.1f} at start, "
            f"{meta['load_end'][0]:.1f} at the end)."
        ),
        "",
        (
            f"* Budget: {meta['budget']}. Each run: `genlab.training.train(config, overrides=[...])` — the same code "
            "as `genlab train` — with the overrides listed in the JSON (`command`)."
        ),
        (
            f"* Score: `genlab.training.evaluate` (what `genlab eval` prints): {meta['n']} samples per seed from "
            f"the config's own sampler (EMA weights), {N_SAMPLE_SEEDS} seeds, vs the {meta['n']} held-out points "
            "of the **same** dataset. SW2 = sliced W2 (256 fixed directions), MMD = RBF mixture with median-heuristic "
            "bandwidths, precision/recall = k-NN (k = 3, Kynkäänniemi et al. 2019), C2ST = held-out accuracy of a "
            "classifier telling samples from data (0.5 = indistinguishable). Each cell is *model* mean ± 95 % "
            f"interval over the seeds / *data floor* mean ± 95 % interval over {N_FLOOR_DRAWS} disjoint training "
            "subsets of the same size. **Bold** = worse than the data floor beyond noise (Welch 95 % interval of "
            "the difference excludes 0); plain = within noise."
        ),
        "* `SW2 raw` = the non-EMA weights of the same checkpoint (first sample seed).",
        "",
        (
            "| config | dataset | path / coupling | kind | sampler (NFE) | steps | train s | "
            "SW2 model / floor | MMD model / floor | precision model / floor | recall model / floor | "
            "C2ST model / floor | verdict | SW2 raw | val loss |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, rep = r["metrics"], r["reports"]
        coupling = "" if r["coupling"] == "independent" else f" + {r['coupling']}"
        cells = []
        for k in ("sw", "mmd", "precision", "recall", "c2st"):
            cell = f"{_cell(rep[k]['model'])} / {_cell(rep[k]['floor'])}"
            cells.append(f"**{cell}**" if rep[k]["verdict"].startswith("worse") else cell)
        lines.append(
            f"| {r['config']} | {r['dataset']} | {r['interpolant']}{coupling} | {r['kind']} | "
            f"{r['sampler']} ({r['nfe']}) | {r['steps']} | {r['train_seconds']:.0f} | "
            + " | ".join(cells)
            + f" | {r['verdict']} | {r['sw_raw_weights']:.4f} | {m.get('val_loss', float('nan')):.4f} |"
        )
    lines += ["", "Skipped config files:", ""]
    lines += [f"* `{k}`: {v}" for k, v in skipped.items()]
    lines += ["", "![samples](training_moons.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="3000", help="uniform train.steps for every config, or 'config'")
    parser.add_argument("--n", type=int, default=2000, help="samples (and held-out points) per config")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and SW directions")
    parser.add_argument("--only", nargs="*", default=None, help="config stems to run (default: all toys)")
    parser.add_argument("--runs", type=Path, default=ROOT / "out" / "train_moons_configs", help="run folders")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--stem", default="training_moons", help="results file stem")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    steps = None if args.steps == "config" else int(args.steps)
    paths, skipped = discover(ROOT / "configs")
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    rows = [run_one(p, steps, args.runs, args.n, args.seed) for p in paths]
    meta = {
        "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "budget": (
            f"uniform train.steps = {steps} for every config (the configs' own budgets are "
            + ", ".join(f"{r['config']} {r['config_steps']}" for r in rows)
            + ")"
            if steps is not None
            else "each config's own train.steps"
        ),
        "steps_override": steps,
        "n": args.n,
        "seed": args.seed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_start": list(load_start),
        "load_end": list(os.getloadavg()),
        "total_wall_seconds": time.perf_counter() - t0,
        "skipped": skipped,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    png = figure(rows, args.out / f"{args.stem}.png")
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    with atomic_write(args.out / f"{args.stem}.json", "w") as fh:
        json.dump({"meta": meta, "rows": clean}, fh, indent=1)
    with atomic_write(args.out / f"{args.stem}.md", "w") as fh:
        fh.write(markdown(meta, clean, skipped))
    print(f"wrote {args.out / args.stem}.{{json,md}} and {png} ({meta['total_wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
