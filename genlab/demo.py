"""The built-in demos behind ``make demo`` / ``genlab demo``.

* :func:`run_training_demo` (default): trains a one-sided stochastic interpolant (trigonometric path,
  ``x_t = cos(πt/2)·x0 + sin(πt/2)·x1`` from Gaussian noise, velocity field, Albergo & Vanden-Eijnden 2023)
  on 2-D moons with a small MLP on the CPU in about a minute, samples the EMA model with three samplers at
  the same number of network evaluations, and writes ``samples.png`` (held-out data | each sampler |
  trajectories) and ``summary.json`` (training time and loss, then sliced Wasserstein / MMD / energy distance
  of each sampler against held-out data, next to the floor that a perfect model reaches at this sample size).
* :func:`run_exact_demo` (``genlab demo --exact``): transports N(0, I) onto an 8-Gaussian mixture with the
  *exact* velocity (``genlab.analytic.exact_field``) and compares samplers with a tight reference solve.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from genlab.analytic import GaussianMixture, exact_field
from genlab.interpolants import RectifiedFlow, VPDiffusion
from genlab.metrics.distances import sliced_wasserstein
from genlab.samplers import sample
from genlab.utils import atomic_write

__all__ = [
    "DEMO_METRICS",
    "DemoRow",
    "SamplerRow",
    "TrainingDemoSummary",
    "demo_config",
    "eight_gaussian_mixture",
    "pick_samplers",
    "run_exact_demo",
    "run_training_demo",
    "stale_options",
]

#: Third sampler of the training demo: the first of these registered at run time.
THIRD_SAMPLER_CANDIDATES: tuple[str, ...] = ("ddim", "dpmpp_2m", "rk4", "midpoint")


# ---------------------------------------------------------------------------------------------- training demo
def demo_config(*, train_steps: int = 4000, seed: int = 0) -> dict[str, Any]:
    """The run config of the training demo (a plain mapping; see ``configs/moons_si.yaml`` for the same run).

    Args:
        train_steps: Optimiser steps.
        seed: Training seed.

    Returns:
        The config mapping.
    """
    return {
        "name": "demo_moons_si",
        "data": {"name": "moons", "n": 20000, "seed": 0, "test_fraction": 0.1},
        "interpolant": {"name": "stochastic", "path": "trig", "gamma": "zero"},
        "coupling": {"name": "independent"},
        "model": {"name": "mlp", "kind": "velocity", "hidden": 256, "depth": 3},
        "train": {
            "steps": int(train_steps),
            "batch_size": 512,
            "lr": 2e-3,
            "warmup": 100,
            "schedule": "cosine",
            "min_lr_ratio": 0.05,
            "ema_decay": 0.999,
            "grad_clip": 1.0,
            "seed": int(seed),
            "log_every": 250,
            "ckpt_every": max(int(train_steps) // 2, 1),
            "keep_last": 1,
            "device": "cpu",
            "engine": "local",
        },
        "sample": {"sampler": "heun", "steps": 10, "n": 2000},
        "eval": {"n": 2000, "metrics": ["sw", "mmd", "energy", "val_loss"]},
        "logging": {"progress": True, "stdout": True},
    }


def pick_samplers(nfe: int = 20) -> list[tuple[str, int]]:
    """``(name, steps)`` of heun, euler and one more registered sampler, each at ≤ ``nfe`` network
    evaluations.

    Args:
        nfe: Evaluation budget per sampler.

    Returns:
        Three ``(name, steps)`` pairs.
    """
    from genlab.samplers import available_samplers, get_sampler

    names = set(available_samplers())
    third = next((c for c in THIRD_SAMPLER_CANDIDATES if c in names), None)
    chosen = ["heun", "euler"] + ([third] if third else [])
    out = []
    for name in chosen:
        smp = get_sampler(name)
        steps = 1
        while (smp.expected_nfe(steps + 1) or steps + 1) <= nfe:
            steps += 1
        out.append((name, steps))
    return out


#: Sample-set metrics of the training demo's table (see :mod:`genlab.training.evaluation`).
DEMO_METRICS: tuple[str, ...] = ("sw", "mmd", "energy", "precision", "recall", "c2st")
_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sw", "SW2 ↓"), ("mmd", "MMD ↓"), ("precision", "precision ↑"), ("recall", "recall ↑"), ("c2st", "C2ST→0.5"),
)


@dataclass
class SamplerRow:
    """One sampler of the training demo, against held-out data (means over the sample seeds).

    ``intervals[name]`` holds the model's :class:`~genlab.metrics.Estimate` (as a dict) and the verdict against the
    data floor for each metric of :data:`DEMO_METRICS`; ``verdict`` is the one-line summary.
    """

    sampler: str
    steps: int
    nfe: int
    sw: float
    mmd: float
    energy: float
    seconds: float
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdict: str = ""


def _cell(est: dict[str, Any]) -> str:
    mean, half = est["mean"], 0.5 * (est["high"] - est["low"])
    return f"{mean:.3f}" if est["n"] < 2 else f"{mean:.3f}±{half:.3f}"


@dataclass
class TrainingDemoSummary:
    """What the training demo measured (also written to ``summary.json``).

    ``floor`` holds the data floor's mean per metric and ``floor_intervals`` its estimate over ``floor_draws``
    disjoint training subsets; rows are averaged over ``seeds`` sample sets.
    """

    demo: str
    train_steps: int
    train_seconds: float
    final_loss: float
    val_loss: float
    n: int
    rows: list[SamplerRow]
    floor: dict[str, float]
    total_seconds: float
    files: dict[str, str] = field(default_factory=dict)
    reused: bool = False
    seeds: int = 1
    floor_draws: int = 1
    floor_intervals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> str:
        """A plain-text table: mean ± 95 % interval per sampler and for the data floor, and each verdict."""
        title = (
            f"{self.demo}: {self.train_steps} steps in {self.train_seconds:.1f}s, final loss "
            f"{self.final_loss:.4f}, held-out loss {self.val_loss:.4f}\n"
            f"{self.n} samples per seed; model: mean ± 95% interval over {self.seeds} seeds; data floor: over "
            f"{self.floor_draws} disjoint training subsets"
        )
        cols = [c for c in _TABLE_COLUMNS if c[0] in self.floor_intervals]
        head = [f"{'sampler':<10} {'steps':>5} {'nfe':>4}"] + [f"{label:>13}" for _, label in cols]
        lines = [title, " ".join(head) + "  verdict"]
        for r in self.rows:
            cells = [f"{_cell(r.intervals[k]['model']):>13}" for k, _ in cols]
            lines.append(f"{r.sampler:<10} {r.steps:>5} {r.nfe:>4} " + " ".join(cells) + f"  {r.verdict}")
        floor_cells = [f"{_cell(self.floor_intervals[k]):>13}" for k, _ in cols]
        lines.append(f"{'data floor':<21} " + " ".join(floor_cells))
        lines.append(f"total {self.total_seconds:.1f}s")
        return "\n".join(lines)


def run_training_demo(
    out: str | Path = "out/demo",
    *,
    train_steps: int | None = None,
    nfe: int = 20,
    n: int = 2000,
    seed: int = 0,
    threads: int = 1,
    overwrite: bool = False,
    seeds: int = 3,
    floor_draws: int = 5,
) -> TrainingDemoSummary:
    """Train the demo stochastic interpolant on moons, compare three samplers, write picture + summary.

    The run folder is ``<out>/run`` (config, metrics, checkpoints); running the demo again with the same
    options resumes it (a finished run is only re-sampled, and ``summary.reused`` says so). A run folder
    trained with other options (``train_steps``, ``seed``) is never reused silently: it is refused, or
    deleted and retrained with ``overwrite=True``.

    Args:
        out: Output folder.
        train_steps: Optimiser steps (default: :func:`demo_config`'s 4000).
        nfe: Network evaluations per sampler.
        n: Samples per sampler.
        seed: Seed of training and sampling.
        threads: torch CPU threads during the demo (restored afterwards).
        overwrite: Delete and retrain a run folder that was trained with other options.
        seeds: Sample sets per sampler (seeds ``seed .. seed + seeds - 1``) behind each mean ± interval.
        floor_draws: Disjoint training subsets behind the data floor's mean ± interval.

    Returns:
        :class:`TrainingDemoSummary`.

    Raises:
        FileExistsError: If ``<out>/run`` holds a run with other options and ``overwrite`` is false.
    """
    from genlab.training import evaluate, load_run, train
    from genlab.training.evaluation import data_floors, metric_reports, overall_verdict
    from genlab.training.sampling import draw_samples, reference_data
    from genlab.viz import scatter_panels

    out = Path(out)
    t_total = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        config = demo_config(**({} if train_steps is None else {"train_steps": train_steps}), seed=seed)
        run_dir = out / "run"
        differences = stale_options(config, run_dir)
        if differences:
            if not overwrite:
                raise FileExistsError(
                    f"{str(run_dir)!r} holds a demo run trained with other options ({'; '.join(differences)}); "
                    "pass --overwrite (overwrite=True) to retrain it, or choose another --out"
                )
            shutil.rmtree(run_dir)
        steps_run = [0]

        def count(_trainer: Any) -> None:
            steps_run[0] += 1

        result = train(config, out=run_dir, resume=True, hooks=[count])
        run = load_run(out / "run")
        split = run.components.split
        rows: list[SamplerRow] = []
        panels: list[tuple[str, torch.Tensor]] = [("held-out data", reference_data(split.test, n))]
        trajectories = None
        held_out = reference_data(split.test)
        floors = data_floors(DEMO_METRICS, split.train, held_out, n=n, draws=floor_draws, seed=seed)
        for name, steps in pick_samplers(nfe):
            sets = [
                draw_samples(
                    run.field,
                    run.components,
                    sampler=name,
                    steps=steps,
                    n=n,
                    seed=seed + i,
                    return_trajectory=trajectories is None and i == 0,
                )
                for i in range(seeds)
            ]
            smp = sets[0]
            if trajectories is None and smp.trajectory is not None:
                trajectories = smp.trajectory[:, :64]
            reports = metric_reports([x.x for x in sets], split.train, held_out, DEMO_METRICS, seed=seed,
                                     floors=floors)
            rows.append(
                SamplerRow(
                    name, steps, smp.nfe, reports["sw"].model.mean, reports["mmd"].model.mean,
                    reports["energy"].model.mean, smp.seconds,
                    intervals={k: {"model": r.model.to_dict(), "verdict": r.verdict.text} for k, r in reports.items()},
                    verdict=overall_verdict(reports),
                )
            )
            panels.append((f"{name}: {steps} steps, {smp.nfe} NFE", smp.x))
        picture = scatter_panels(panels, out / "samples.png", trajectories=trajectories, lim=3.0)
        val = evaluate(run, metrics=["val_loss"], write=False).metrics["val_loss"]
        summary = TrainingDemoSummary(
            demo="stochastic interpolant (trig, one-sided) on 2-D moons",
            train_steps=result.step,
            train_seconds=round(result.elapsed, 2),
            final_loss=result.loss,
            val_loss=val,
            n=n,
            rows=rows,
            floor={k: f.mean for k, f in floors.items()},
            total_seconds=0.0,
            seeds=seeds,
            floor_draws=floor_draws,
            floor_intervals={k: f.to_dict() for k, f in floors.items()},
            reused=steps_run[0] == 0,
            files={
                "picture": str(picture),
                "run": str(out / "run"),
                "metrics": str(out / "run" / "metrics.jsonl"),
            },
        )
        summary.total_seconds = round(time.perf_counter() - t_total, 2)
        with atomic_write(out / "summary.json", "w") as fh:
            json.dump(asdict(summary), fh, indent=2)
        return summary
    finally:
        torch.set_num_threads(previous_threads)


def stale_options(config: dict[str, Any], run_dir: str | Path) -> list[str]:
    """Where a run folder's saved config differs from ``config`` (empty: same run, or no saved config).

    Keys the saved config adds (sizes inferred from the data) are ignored; every key of the resolved
    ``config`` must hold the same value in ``<run_dir>/config.yaml``.

    Args:
        config: The requested run config (a mapping, as :func:`demo_config` returns).
        run_dir: The run folder.

    Returns:
        ``"key: saved -> requested"`` strings.
    """
    from genlab.config import load_yaml
    from genlab.training import load_config

    saved_path = Path(run_dir) / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = load_yaml(saved_path)
    wanted = load_config(config).to_dict()
    out: list[str] = []

    def walk(want: Any, have: Any, key: str) -> None:
        if isinstance(want, dict):
            have = have if isinstance(have, dict) else {}
            for k, v in want.items():
                walk(v, have.get(k, _MISSING), f"{key}.{k}" if key else k)
        elif have is _MISSING or _plain(have) != _plain(want):
            out.append(f"{key}: {'(missing)' if have is _MISSING else have!r} -> {want!r}")

    walk(wanted, saved, "")
    return out


_MISSING = object()


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (YAML has only lists)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


# ------------------------------------------------------------------------------------------------- exact demo
@dataclass
class DemoRow:
    """One sampler's result in the exact-field demo."""

    path: str
    sampler: str
    steps: int
    nfe: int
    rmse_vs_reference: float
    sliced_w_to_target: float
    seconds: float


def eight_gaussian_mixture(*, radius: float = 2.0, std: float = 0.25) -> GaussianMixture:
    """Eight isotropic Gaussians on a circle (float64)."""
    ang = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return GaussianMixture(means, torch.full((8,), std**2, dtype=torch.float64))


def run_exact_demo(
    out: str | Path = "out/demo", *, n: int = 2000, steps: int = 10, seed: int = 0
) -> list[DemoRow]:
    """Run the exact-field demo and write ``samples.png`` and ``summary.json`` under ``out``.

    Args:
        out: Output folder.
        n: Number of samples.
        steps: Steps of the fixed-step samplers.
        seed: Seed of the initial noise.

    Returns:
        The table rows.
    """
    from genlab.viz import scatter_panels

    out = Path(out)
    target = eight_gaussian_mixture()
    gen = torch.Generator().manual_seed(seed)
    data = target.sample(n, generator=gen)
    rows: list[DemoRow] = []
    panels = [("target (8-GMM)", data)]
    traj = None
    for path_name, interpolant, kind, samplers in (
        ("rectified flow", RectifiedFlow(), "velocity", ("euler", "heun")),
        ("VP diffusion", VPDiffusion(), "noise", ("euler", "heun")),
    ):
        fld = exact_field(interpolant, "gaussian", target, kind)
        grid_opts = (
            {"t_end": 1 - 1e-3} if isinstance(interpolant.schedule, type(VPDiffusion().schedule)) else {}
        )
        ref = sample(
            fld,
            "dopri5",
            steps=1,
            n=n,
            shape=(2,),
            seed=seed,
            dtype=torch.float64,
            rtol=1e-7,
            atol=1e-7,
            grid_options=grid_opts,
        )
        for name in samplers:
            t0 = time.perf_counter()
            res = sample(
                fld,
                name,
                steps=steps,
                n=n,
                shape=(2,),
                seed=seed,
                dtype=torch.float64,
                return_trajectory=traj is None,
                grid_options=grid_opts,
            )
            secs = time.perf_counter() - t0
            if traj is None and res.trajectory is not None:
                traj = torch.stack(res.trajectory)
            rmse = float((res.x - ref.x).pow(2).sum(1).mean().sqrt())
            sw = float(
                sliced_wasserstein(res.x, data, n_projections=256, generator=torch.Generator().manual_seed(1))
            )
            rows.append(DemoRow(path_name, name, steps, res.nfe, rmse, sw, secs))
            panels.append((f"{path_name}: {name} ({res.nfe} NFE)", res.x))
    scatter_panels(panels, out / "samples.png", trajectories=traj)
    with atomic_write(out / "summary.json", "w") as fh:
        json.dump(
            {"demo": "exact-field transport N(0,I) -> 8-GMM", "n": n, "rows": [asdict(r) for r in rows]},
            fh,
            indent=2,
        )
    return rows
