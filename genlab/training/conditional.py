"""Sample a conditional run (a bridge, a data-dependent coupling) on given inputs and write input | sample |
target grids: what ``genlab sample --run R --cond ...`` does.

A bridge run (``conditional_source``: DDBM/DBIM, paired data) takes its conditions from a tensor file or from its
own held-out pairs; a data-dependent coupling run builds its inputs from held-out targets (the coupling needs
the clean image to make ``m(x1)``), so it takes ``cond="held_out"`` only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.checks import check_count, check_device
from genlab.samplers import sample as sample_field
from genlab.training.api import Run, load_run
from genlab.training.sampling import draw_samples
from genlab.utils import atomic_write

__all__ = ["ConditionalSamples", "grid_rows", "load_conditions", "sample_conditional"]


@dataclass
class ConditionalSamples:
    """Samples of a conditional run on given inputs.

    Attributes:
        x: Samples ``(n, ...)``.
        inputs: What the model was conditioned on, shown in the first row (bridge: the condition x0; coupling:
            its starting point x0).
        target: Paired ground truth, if known.
        nfe: Network evaluations.
        sampler: Sampler name.
        steps: Grid steps.
        seconds: Sampler wall time.
        step: Checkpoint step.
        files: Written files.
    """

    x: Tensor
    inputs: Tensor
    target: Tensor | None
    nfe: int
    sampler: str
    steps: int
    seconds: float
    step: int
    files: list[Path] = field(default_factory=list)


def load_conditions(path: str | Path) -> tuple[Tensor, Tensor | None]:
    """Read conditions from a ``.pt`` file: a tensor ``x0`` or a dict with ``"x0"`` (and optional ``"x1"``).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it holds something else.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"cond={str(p)!r}: no such file; pass 'held_out' or a .pt file with x0")
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, Tensor):
        return obj, None
    if isinstance(obj, dict) and isinstance(obj.get("x0"), Tensor):
        x1 = obj.get("x1")
        return obj["x0"], x1 if isinstance(x1, Tensor) else None
    raise ValueError(
        f"cond file {str(p)!r} must hold a tensor x0 (B, C, H, W) or a dict {{'x0': ..., 'x1': optional}}; "
        f"got {type(obj).__name__}"
    )


def grid_rows(inputs: Tensor, samples: Tensor, target: Tensor | None, *, per_row: int = 8) -> Tensor:
    """Stack blocks of ``per_row`` items as rows ``input | sample | target`` (for :func:`genlab.viz.image_grid`)."""
    rows = []
    n = min(samples.shape[0], 4 * per_row)
    for start in range(0, n, per_row):
        sl = slice(start, min(start + per_row, n))
        block = [inputs[sl], samples[sl]] + ([target[sl]] if target is not None else [])
        for b in block:
            pad = per_row - b.shape[0]
            rows.append(torch.cat([b, torch.full((pad, *b.shape[1:]), -1.0, dtype=b.dtype)]) if pad else b)
    return torch.cat(rows)


def sample_conditional(
    run: str | Path | Run,
    *,
    cond: str | Path | Tensor = "held_out",
    sampler: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    grid: str | None = None,
    out: str | Path | None = None,
    ema: bool = True,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    **options: Any,
) -> ConditionalSamples:
    """Sample a conditional run on ``cond`` and (with ``out``) write the input | sample | target grid.

    Args:
        run: Run folder or loaded :class:`Run`.
        cond: ``"held_out"`` (the run's held-out inputs and their paired targets), a ``.pt`` file, or a tensor of
            conditions ``x0`` (bridge runs only).
        sampler: Sampler name (default: the run's ``sample.sampler``).
        steps: Grid steps (default: ``sample.steps``).
        n: Number of samples (default: ``sample.n``, or all given conditions).
        seed: Seed (default: ``sample.seed``).
        grid: Grid name (default: ``sample.grid``).
        out: ``.png`` (grid + ``<stem>.pt`` tensors) or ``.pt``.
        ema: EMA weights.
        device: Device.
        overwrite: Replace existing output files.
        **options: Sampler options (override ``sample.options``).

    Returns:
        :class:`ConditionalSamples`.

    Raises:
        ValueError: If the run is not conditional, the conditions do not fit the run, or ``out`` is bad.
        FileExistsError: If ``out`` exists and ``overwrite`` is false.
    """
    check_device(device)
    if n is not None:
        check_count(n, name="n")
    if out is not None:
        out = Path(out)
        if out.suffix not in (".png", ".pt"):
            raise ValueError(f"out must end with .png or .pt, got {str(out)!r}")
        existing = sorted(str(p) for p in {out, out.with_suffix(".pt")} if p.exists())
        if existing and not overwrite:
            raise FileExistsError(f"out={str(out)!r} would replace {existing}; pass overwrite=True (--overwrite)")
    loaded = load_run(run, ema=ema, device=device)
    comp, scfg = loaded.components, loaded.config.sample
    interp = comp.interpolant
    if interp.gaussian_source:
        raise ValueError(
            f"run {str(loaded.run_dir)!r} is not conditional (Gaussian source, no condition); --cond applies to "
            "bridges and data-dependent couplings"
        )
    kw: dict[str, Any] = {
        "sampler": sampler or scfg.sampler,
        "steps": steps if steps is not None else scfg.steps,
        "grid": grid or scfg.grid,
        "seed": seed if seed is not None else scfg.seed,
    }
    opts = {**scfg.options, **options}
    if isinstance(cond, str) and cond == "held_out":
        smp = draw_samples(loaded.field, comp, n=n if n is not None else scfg.n, grid_options=scfg.grid_options,
                           options=opts, **kw)
        x, inputs, target, nfe, seconds = smp.x, smp.x_init, smp.target, smp.nfe, smp.seconds
        if inputs is None:  # pragma: no cover - a data-source path always has x_init
            raise ValueError("this run has no conditional inputs")
    else:
        if not interp.conditional_source:
            raise ValueError(
                "conditions from a file or tensor need a bridge run (its x0 is the condition); a data-dependent "
                "coupling builds its input from clean targets: use cond='held_out'"
            )
        x0, target = load_conditions(cond) if not isinstance(cond, Tensor) else (cond, None)
        if tuple(x0.shape[1:]) != tuple(comp.data_shape):
            raise ValueError(
                f"conditions have per-sample shape {tuple(x0.shape[1:])} but run {str(loaded.run_dir)!r} was "
                f"trained on {tuple(comp.data_shape)}"
            )
        if not x0.is_floating_point():
            raise ValueError(f"conditions must be floating point, got {x0.dtype}")
        if target is not None and target.shape != x0.shape:
            raise ValueError(f"x1 of the cond file has shape {tuple(target.shape)}, x0 {tuple(x0.shape)}")
        count = x0.shape[0] if n is None else min(n, x0.shape[0])
        params = list(loaded.field.parameters())
        dev = params[0].device if params else torch.device("cpu")
        x0 = x0[:count].to(dev)
        target = None if target is None else target[:count]
        t0 = time.perf_counter()
        res = sample_field(
            loaded.field, kw["sampler"], steps=kw["steps"], grid=kw["grid"], n=count, shape=comp.data_shape,
            x_init=x0, cond={"x0": x0}, generator=torch.Generator().manual_seed(int(kw["seed"])), device=dev,
            grid_options=scfg.grid_options, **opts,
        )
        seconds = time.perf_counter() - t0
        x, inputs, nfe = res.x, x0, res.nfe
    result = ConditionalSamples(
        x=x.cpu(), inputs=inputs.cpu(), target=None if target is None else target.cpu(), nfe=int(nfe),
        sampler=kw["sampler"], steps=int(kw["steps"]), seconds=float(seconds), step=loaded.step,
    )
    if out is not None:
        pt = out.with_suffix(".pt")
        dump = {"x": result.x, "inputs": result.inputs, "nfe": result.nfe, "sampler": result.sampler,
                "steps": result.steps, "step": result.step}
        if result.target is not None:
            dump["target"] = result.target
        with atomic_write(pt, "wb") as fh:
            torch.save(dump, fh)
        result.files.append(pt)
        if out.suffix == ".png":
            if result.x.ndim != 4:
                raise ValueError(f"samples of shape {tuple(result.x.shape[1:])} have no image grid; use a .pt output")
            from genlab.viz import image_grid

            rows = "input | sample | target" if result.target is not None else "input | sample"
            image_grid(grid_rows(result.inputs, result.x, result.target), out, nrow=8,
                       title=f"{rows} (rows); {result.sampler}, {result.nfe} NFE, step {result.step}")
            result.files.append(out)
    return result
