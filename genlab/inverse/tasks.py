"""Standard image restoration tasks by name, and solving one on a trained run (what ``genlab solve`` runs).

Tasks (the settings of DPS, Chung et al. ICLR'23, scaled to small images): ``inpaint-random`` (each pixel
missing with probability 0.5, one mask drawn from the seed), ``inpaint-box`` (the central box of half the side
missing), ``deblur`` (Gaussian kernel, σ = 1 px, size 5, circular), ``sr2`` / ``sr4`` (box-average
super-resolution) and ``denoise`` (identity). The noise default σ_y = 0.05 in [-1, 1] units is DPS's.

:func:`solve_run` takes a held-out image of a run's own test split as the ground truth, measures it, solves
with the run's field as a :class:`~genlab.inverse.priors.DiffusionPrior`, and writes the picture (measurement
| samples | posterior mean | posterior std | ground truth) with the tensors beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.inverse.operators import FFTBlur, Inpainting, Operator, SuperResolution, gaussian_kernel
from genlab.inverse.problem import InverseProblem

__all__ = ["TASKS", "RunSolve", "add_solve_parser", "make_task", "solve_run"]

#: Names accepted by :func:`make_task`.
TASKS: tuple[str, ...] = ("inpaint-random", "inpaint-box", "deblur", "sr2", "sr4", "denoise")


def make_task(name: str, x_shape: Sequence[int], *, seed: int = 0) -> Operator:
    """The operator of a named task for images of shape ``x_shape = (C, H, W)``.

    Args:
        name: One of :data:`TASKS`.
        x_shape: Per-sample image shape.
        seed: Seed of the random inpainting mask.

    Returns:
        The operator.

    Raises:
        ValueError: For an unknown name, a non-image shape, or a super-resolution factor that does not divide
            the image size.
    """
    shape = tuple(int(s) for s in x_shape)
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if name == "denoise":  # the identity: an all-ones mask (closed-form solvers, no n×n matrix)
        return Inpainting(torch.ones(shape))
    if len(shape) != 3:
        raise ValueError(f"task {name!r} needs images (C, H, W); the data has per-sample shape {shape}")
    _, h, w = shape
    if name == "inpaint-random":
        return Inpainting.random(shape, 0.5, generator=torch.Generator().manual_seed(int(seed)))
    if name == "inpaint-box":
        bh, bw = max(1, h // 2), max(1, w // 2)
        return Inpainting.box(shape, ((h - bh) // 2, (w - bw) // 2, bh, bw))
    if name == "deblur":
        return FFTBlur(gaussian_kernel(5, 1.0), shape)
    factor = 2 if name == "sr2" else 4
    if h % factor or w % factor:
        raise ValueError(f"task {name!r}: the image size {h}x{w} is not divisible by {factor}")
    return SuperResolution(factor, mode="box", x_shape=shape)


@dataclass
class RunSolve:
    """What :func:`solve_run` produced.

    Attributes:
        result: The :class:`~genlab.inverse.solve.SolveResult`.
        problem: The measured problem.
        ground_truth: The held-out image ``(1, C, H, W)``.
        psnr_mean: PSNR (dB, range [-1, 1]) of the posterior mean against the ground truth.
        psnr_samples: Mean PSNR of the individual samples.
        files: Written files (picture and ``.pt`` dump).
    """

    result: Any
    problem: InverseProblem
    ground_truth: Tensor
    psnr_mean: float
    psnr_samples: float
    files: list[Path] = field(default_factory=list)


def _prior_and_held_out(run: Any, device: str | torch.device) -> tuple[Any, Tensor]:
    """The run's prior (a DiffusionPrior of its field, or an HVAEPrior of an ``hvae`` run) and its held-out x1."""
    from genlab.data import get_split
    from genlab.inverse.priors import DiffusionPrior, HVAEPrior
    from genlab.training import load_run
    from genlab.training.sampling import reference_data

    if not hasattr(run, "field"):
        from genlab.training.config import load_config

        saved = Path(run) / "config.yaml"
        cfg = load_config(saved) if saved.is_file() else None
        if cfg is not None and cfg.objective.name == "hvae":
            from genlab.training.hvae import load_hvae

            hvae = load_hvae(run, device=device)
            data = hvae.config.data
            split = get_split(data.name, test_fraction=data.test_fraction, split_seed=data.split_seed, **data.kwargs)
            return HVAEPrior(hvae.model), reference_data(split.test)
    loaded = load_run(run, device=device)
    return DiffusionPrior(loaded.field), reference_data(loaded.components.split.test)


def solve_run(
    run: Any,
    *,
    task: str,
    method: str = "dps",
    index: int = 0,
    n: int = 8,
    sigma: float = 0.05,
    seed: int = 0,
    sampler: str | None = None,
    steps: int | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    **options: Any,
) -> RunSolve:
    """Solve a named task on held-out image ``index`` of a trained run's test split.

    Args:
        run: Run folder or :class:`genlab.training.Run`: a diffusion/flow run (its field is the prior) or an
            ``objective: hvae`` run (its HVAE is a PnP-HVAE prior; use ``method="pnp_hvae"``).
        task: One of :data:`TASKS`.
        method: Registered inverse method (``genlab.inverse.available_methods()``).
        index: Which held-out image is the ground truth.
        n: Posterior samples.
        sigma: Measurement noise std (in [-1, 1] units).
        seed: Seed of the measurement noise, the mask and the samples.
        sampler: Sampler (default: the method's).
        steps: Grid steps (default: the method's).
        out: Output ``.png`` (picture; tensors in ``<stem>.pt``).
        overwrite: Replace existing output files.
        device: Device of the prior.
        **options: The method's options.

    Returns:
        :class:`RunSolve`.

    Raises:
        FileExistsError: If an output exists and ``overwrite`` is false (checked before solving).
        ValueError: For a bad task, index, n or sigma, or a run whose field is not a Gaussian-source prior.
    """
    from genlab.inverse.solve import solve
    from genlab.metrics import psnr
    from genlab.utils import atomic_write

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite float >= 0; got {sigma!r}")
    files = []
    if out is not None:
        out = Path(out)
        if out.suffix != ".png":
            raise ValueError(f"out must be a .png path; got {str(out)!r}")
        files = [out, out.with_suffix(".pt")]
        existing = [str(p) for p in files if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"out would replace {existing}; pass overwrite=True (--overwrite) or choose another out")
    prior, test = _prior_and_held_out(run, device)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < test.shape[0]:
        raise ValueError(f"index must be an int in [0, {test.shape[0] - 1}] (held-out items); got {index!r}")
    x = test[index : index + 1].to(device)
    op = make_task(task, tuple(x.shape[1:]), seed=seed).to(device)
    g = torch.Generator().manual_seed(int(seed))
    y_clean = op.A(x)
    y = y_clean + float(sigma) * torch.randn(y_clean.shape, generator=g).to(y_clean)
    problem = InverseProblem(op, y, sigma=float(sigma))
    result = solve(problem, prior, method, sampler, steps, n, seed, **options)
    samples = result.samples
    p_mean = float(psnr(samples.mean(0, keepdim=True), x).mean())
    p_samples = float(psnr(samples, x.expand_as(samples)).mean())
    written: list[Path] = []
    if out is not None:
        result.save_picture(problem, out, ground_truth=x)
        pt = out.with_suffix(".pt")
        with atomic_write(pt, "wb") as fh:
            torch.save({"samples": samples.cpu(), "y": y.cpu(), "x": x.cpu(), "task": task, "method": method,
                        "nfe": result.nfe, "sigma": float(sigma), "index": index}, fh)
        written = [out, pt]
    return RunSolve(result=result, problem=problem, ground_truth=x, psnr_mean=p_mean, psnr_samples=p_samples,
                    files=written)


def _cmd_solve(args: Any) -> int:
    import json
    import sys

    from genlab.cli import parse_options

    options = parse_options(args.option)
    res = solve_run(
        args.run, task=args.task, method=args.method, index=args.index, n=args.n, sigma=args.sigma,
        seed=args.seed, sampler=args.sampler, steps=args.steps, out=args.out, overwrite=args.overwrite,
        device=args.device, **options,
    )
    print(f"{args.method} on {args.task}: PSNR of the posterior mean {res.psnr_mean:.2f} dB, of the samples "
          f"{res.psnr_samples:.2f} dB ({res.result.nfe} NFE, {res.result.wall_time:.1f} s)", file=sys.stderr)
    json.dump({"task": args.task, "method": args.method, "nfe": res.result.nfe, "psnr_mean": res.psnr_mean,
               "psnr_samples": res.psnr_samples, "seconds": round(res.result.wall_time, 3),
               "files": [str(f) for f in res.files]}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def add_solve_parser(sub: Any) -> None:
    """The ``genlab solve`` sub-command (plugged into :data:`genlab.cli.SUBCOMMANDS`)."""
    p = sub.add_parser(
        "solve",
        help="solve an inverse problem on a held-out image of a trained run (writes measurement | samples | "
        "mean | std | ground truth)",
    )
    p.add_argument("--run", required=True, help="run folder (its field is the prior)")
    p.add_argument("--task", required=True, choices=TASKS, help="measurement operator")
    p.add_argument("--method", default="dps", help="inverse method (genlab list methods; default dps)")
    p.add_argument("--index", type=int, default=0, help="held-out image used as ground truth (default 0)")
    p.add_argument("--n", type=int, default=8, help="posterior samples (default 8)")
    p.add_argument("--sigma", type=float, default=0.05, help="measurement noise std in [-1, 1] units (0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise, the mask and the samples")
    p.add_argument("--sampler", default=None, help="sampler (default: the method's)")
    p.add_argument("--steps", type=int, default=None, help="grid steps (default: the method's)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, e.g. --option zeta=1.0 (repeatable)")
    p.add_argument("--out", required=True, help="output .png (tensors in <stem>.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--device", default="cpu", help="device of the prior (default cpu)")
    p.set_defaults(func=_cmd_solve)
