"""Train a U-Net digits config with ``genlab train`` (Python API) on CPU, sample it, and score it with the digits FD.

What runs (one process, ``torch.set_num_threads(1)``):

1. ``genlab.training.train(config, out=..., overrides=[...])`` — the code behind
   ``genlab train CONFIG --set ...`` — on ``--config`` (default ``configs/digits_si.yaml``: one-sided stochastic
   interpolant, trigonometric path, small diffusers U-Net ``block_out_channels [32, 64]``), with these overrides:

   * ``train.steps=--steps`` (default 2500; the config asks for 4000, which does not fit 20 min on 2 shared
     cores at ≈ 3 it/s; the warm-up + cosine LR schedule is laid over the shorter budget);
   * ``data.test_fraction=0.2`` (``split_seed`` 0): the generator's held-out split is then exactly the split the
     digits-FD classifier was trained/tested on (``genlab/assets/digits_classifier.json``), so the FD reference
     (the 359 test digits) was seen neither by the generator nor by the feature extractor (checked below);
   * ``train.sample_every=0``, ``train.device=cpu``, ``logging.progress=false`` (side work off; the final
     checkpoint is kept);

2. ``genlab.training.sample_run`` on the EMA weights: ``--n`` (1000) samples with ``--sampler`` / ``--sampler-steps``
   (default Heun, 20 steps = 40 NFE as genlab counts them), seed 0; the raw (non-EMA) weights too, with the same noise;
3. digits FD (:class:`genlab.metrics.DigitsFD`, reference = held-out test split, 359 images) of the samples,
   clamped to the data range [−1, 1] (like FID code clamps to [0, 255]; the fraction of clamped pixels is
   reported), and the **floor**: the FD of ``n`` random training digits (5 subsets; and of all 1438) against the
   same reference, i.e. what a perfect generator scores at this sample size. Also: the class histogram of the
   samples under the shipped classifier (mode coverage) and the pixel-space SW2/MMD/energy of
   ``genlab.training.sample_metrics`` against the held-out split with their floors;
4. a picture: samples next to held-out digits (``training_digits.png``) and a 16×16 grid of samples
   (``training_digits_samples.png``).

Outputs: ``experiments/results/training_digits.{json,md,png}`` and ``training_digits_samples.png``.

Run: ``python experiments/train_digits.py [--config configs/digits_si.yaml] [--steps 2500]``; ≤ 20 min wall on
2 shared CPU cores with the defaults (585 s measured at load 1.6–2.9; the wall time and machine load are recorded).
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

from genlab.metrics import DigitsClassifier, DigitsFD, digits_classifier_metadata
from genlab.metrics.digits import prepare_digits
from genlab.training import load_config, load_run, reference_data, sample_run, train
from genlab.training.evaluation import sample_metrics
from genlab.utils import atomic_write
from genlab.viz import image_grid, require_matplotlib, save_figure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
N_FLOOR_REPEATS = 5


def check_split(run_split: Any) -> dict[str, Any]:
    """Is the run's held-out split the classifier's test split? (Same rows of ``load_digits``.)"""
    from genlab.data import get_split

    meta = digits_classifier_metadata()
    clf_split = get_split(
        "digits", split_seed=int(meta["split_seed"]), test_fraction=float(meta["test_fraction"])
    )
    same_test = torch.equal(run_split.test_indices, clf_split.test_indices)
    same_images = torch.equal(reference_data(run_split.test), clf_split.test.tensors[0])
    return {
        "run_test_size": len(run_split.test),
        "classifier_test_size": len(clf_split.test),
        "same_test_rows": bool(same_test),
        "same_test_images": bool(same_images),
        "train_test_overlap": len(
            set(run_split.train_indices.tolist()) & set(clf_split.test_indices.tolist())
        ),
    }


def class_histogram(x: Tensor, classifier: DigitsClassifier) -> dict[str, Any]:
    """Predicted classes of ``x`` under the shipped classifier: counts, entropy, mean max-probability."""
    with torch.no_grad():
        probs = torch.softmax(classifier(prepare_digits(x)), dim=1)
    counts = torch.bincount(probs.argmax(1), minlength=10)
    freq = counts.double() / counts.sum()
    entropy = float(-(freq[freq > 0] * freq[freq > 0].log()).sum())
    return {
        "counts": counts.tolist(),
        "entropy_nats": entropy,
        "max_entropy_nats": float(torch.log(torch.tensor(10.0))),
        "mean_confidence": float(probs.max(1).values.mean()),
    }


def figure(samples: Tensor, reference: Tensor, title_s: str, title_r: str, path: Path) -> Path:
    """Samples (left) next to held-out digits (right), 10×10 each."""
    plt = require_matplotlib()

    def canvas(x: Tensor) -> Tensor:
        x = ((x[:100].clamp(-1, 1) + 1) / 2).squeeze(1)
        grid = torch.ones(10 * 9 + 1, 10 * 9 + 1)
        for i in range(x.shape[0]):
            r, c = divmod(i, 10)
            grid[1 + 9 * r : 9 + 9 * r, 1 + 9 * c : 9 + 9 * c] = x[i]
        return grid

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    for ax, x, title in ((axes[0], samples, title_s), (axes[1], reference, title_r)):
        ax.imshow(canvas(x), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return save_figure(fig, path)


def markdown(res: dict[str, Any]) -> str:
    meta, fd, ms = res["meta"], res["fd"], res["pixel_metrics"]
    floor = fd["floor_train_subsets"]
    lines = [
        f"# Training digits with `genlab train`: {meta['config']} on CPU",
        "",
        (
            f"Generated by `experiments/train_digits.py {meta['argv']}` ({meta['date']}). torch {meta['torch']}, "
            f"**torch threads = 1**, {meta['cpus']} CPU cores shared with other jobs (load average "
            f"{meta['load_start'][0]:.1f} → {meta['load_end'][0]:.1f})."
        ),
        "",
        "Exact command (what `train()` ran):",
        "",
        f"    {meta['command']}",
        "",
        (
            f"* Config: `{meta['config']}` — {meta['description']}; network {meta['network']} "
            f"({meta['n_params']:,} parameters)."
        ),
        (
            f"* Budget: {meta['steps']} steps × batch {meta['batch_size']} (config: {meta['config_steps']} steps); "
            f"training wall {meta['train_seconds']:.0f} s ({meta['steps_per_s']:.2f} it/s); whole script "
            f"{meta['total_wall_seconds']:.0f} s."
        ),
        (
            f"* Split: `data.test_fraction=0.2`, seed 0 → generator trained on {fd['n_train']} "
            f"digits; its held-out split is the digits-FD classifier's test split "
            f"(same rows: {meta['split']['same_test_rows']}; training rows among them: "
            f"{meta['split']['train_test_overlap']})."
        ),
        (
            f"* Sampling: {res['sampling']['sampler']}, {res['sampling']['steps']} steps = {res['sampling']['nfe']} NFE, "
            f"{res['sampling']['n']} samples, seed 0, EMA weights ({res['sampling']['seconds']:.0f} s); "
            f"{100 * res['sampling']['clamped_fraction']:.2f} % of the pixels fell outside [−1, 1] and were clamped."
        ),
        "",
        f"## Digits FD (reference: the {fd['n_reference']} held-out test digits; N = {res['sampling']['n']})",
        "",
        "| set | digits FD |",
        "|---|---|",
        f"| samples, EMA weights | **{fd['samples_ema']:.3f}** |",
        f"| samples, raw weights | {fd['samples_raw']:.3f} |",
        (
            f"| floor: {res['sampling']['n']} random training digits ({N_FLOOR_REPEATS} subsets) | "
            f"{floor['mean']:.3f} ± {floor['std']:.3f} (min {floor['min']:.3f}, max {floor['max']:.3f}) |"
        ),
        f"| floor: all {fd['n_train']} training digits | {fd['floor_all_train']:.3f} |",
        f"| samples / floor | {fd['samples_ema'] / floor['mean']:.2f} |",
        "",
        "## Pixel-space distances to the held-out split (64-d vectors; floor = training digits, same N)",
        "",
        "| metric | samples (EMA) | floor |",
        "|---|---|---|",
    ]
    for k in ("sw", "mmd", "energy"):
        lines.append(f"| {k} | {ms[k]:.4f} | {ms[k + '_ref']:.4f} |")
    h, hr = res["class_histogram"]["samples"], res["class_histogram"]["held_out"]
    lines += [
        "",
        "## Predicted classes (shipped digits classifier)",
        "",
        "| set | counts 0–9 | entropy / log 10 | mean max-prob |",
        "|---|---|---|---|",
        f"| samples | {h['counts']} | {h['entropy_nats'] / h['max_entropy_nats']:.3f} | {h['mean_confidence']:.3f} |",
        (
            f"| held-out | {hr['counts']} | {hr['entropy_nats'] / hr['max_entropy_nats']:.3f} | "
            f"{hr['mean_confidence']:.3f} |"
        ),
        "",
        "![samples vs held-out](training_digits.png)",
        "",
        "![256 samples](training_digits_samples.png)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "digits_si.yaml")
    parser.add_argument("--steps", type=int, default=2500, help="train.steps override")
    parser.add_argument("--set", action="append", default=[], help="extra overrides (section.key=value)")
    parser.add_argument("--n", type=int, default=1000, help="number of samples")
    parser.add_argument("--sampler", default="heun")
    parser.add_argument("--sampler-steps", type=int, default=20)
    parser.add_argument("--runs", type=Path, default=ROOT / "out" / "train_digits", help="run folder parent")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stem", default="training_digits")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    t_start = time.perf_counter()
    load_start = os.getloadavg()

    config = args.config
    run_dir = args.runs / config.stem
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = [
        f"train.steps={args.steps}",
        "data.test_fraction=0.2",
        "data.split_seed=0",
        "train.sample_every=0",
        "train.device=cpu",
        "logging.progress=false",
        *args.set,
    ]
    rel = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
    conf_rel = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
    command = f"genlab train {conf_rel} --out {rel} " + " ".join(f"--set {o}" for o in overrides)
    print(command, file=sys.stderr, flush=True)
    result = train(config, out=run_dir, overrides=overrides)

    run = load_run(run_dir)
    split = run.components.split
    cfg = run.config
    smp = sample_run(run, sampler=args.sampler, steps=args.sampler_steps, n=args.n, seed=0).samples
    raw = sample_run(
        run_dir, sampler=args.sampler, steps=args.sampler_steps, n=args.n, seed=0, ema=False
    ).samples
    x = smp.x.detach().cpu()
    clamped = float(((x < -1) | (x > 1)).double().mean())
    xc, rawc = x.clamp(-1, 1), raw.x.detach().cpu().clamp(-1, 1)

    fd = DigitsFD("test")
    train_x = reference_data(split.train)
    floors = []
    for r in range(N_FLOOR_REPEATS):
        idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1000 + r))[: args.n]
        floors.append(fd.score(train_x[idx]))
    ft = torch.tensor(floors)
    held_out = reference_data(split.test)
    pix = sample_metrics(smp, split.train, split.test, ["sw", "mmd", "energy"], n_projections=256, seed=0)
    clf = DigitsClassifier.load_pretrained()
    res: dict[str, Any] = {
        "fd": {
            "samples_ema": fd.score(xc),
            "samples_raw": fd.score(rawc),
            "floor_train_subsets": {
                "values": floors,
                "mean": float(ft.mean()),
                "std": float(ft.std()),
                "min": float(ft.min()),
                "max": float(ft.max()),
            },
            "floor_all_train": fd.score(train_x),
            "n_train": len(train_x),
            "n_reference": fd.n_reference,
            "held_out_vs_itself_check": fd.score(held_out),
        },
        "pixel_metrics": pix,
        "class_histogram": {"samples": class_histogram(xc, clf), "held_out": class_histogram(held_out, clf)},
        "sampling": {
            "sampler": smp.sampler,
            "steps": smp.steps,
            "nfe": smp.nfe,
            "n": int(x.shape[0]),
            "seconds": smp.seconds,
            "clamped_fraction": clamped,
            "min": float(x.min()),
            "max": float(x.max()),
        },
        "training": {
            "step": result.step,
            "final_loss": result.loss,
            "seconds": result.seconds,
            "history": result.history,
        },
    }
    ikw = ", ".join(f"{k}={v}" for k, v in cfg.interpolant.kwargs.items())
    res["meta"] = {
        "argv": " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "config": str(conf_rel),
        "description": f"interpolant {cfg.interpolant.name}({ikw}), coupling {cfg.coupling.name}, "
        f"kind {cfg.model.kind}",
        "network": f"{cfg.model.name}({', '.join(f'{k}={v}' for k, v in cfg.model.kwargs.items())})",
        "n_params": sum(p.numel() for p in run.components.net.parameters()),
        "command": command,
        "overrides": overrides,
        "steps": result.step,
        "config_steps": load_config(config).train.steps,
        "batch_size": cfg.train.batch_size,
        "train_seconds": result.seconds,
        "steps_per_s": result.step / result.seconds,
        "split": check_split(split),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_start": list(load_start),
        "load_end": list(os.getloadavg()),
        "total_wall_seconds": time.perf_counter() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    figure(
        xc,
        held_out,
        f"{cfg.name}: {smp.sampler} {smp.nfe} NFE, {result.step} steps — FD {res['fd']['samples_ema']:.2f}",
        f"held-out test digits — floor FD {res['fd']['floor_train_subsets']['mean']:.2f} (train digits)",
        args.out / f"{args.stem}.png",
    )
    image_grid(xc[:256], args.out / f"{args.stem}_samples.png", nrow=16, title=f"{cfg.name}: 256 samples")
    with atomic_write(args.out / f"{args.stem}.json", "w") as fh:
        json.dump(res, fh, indent=1)
    with atomic_write(args.out / f"{args.stem}.md", "w") as fh:
        fh.write(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
