"""Draw samples from a run's Field with any registered sampler, and picture them.

Gaussian-source paths start from noise (``genlab.samplers.sample``); paths with a data source (two-sided
interpolants, bridges, data-dependent couplings) start from the coupling's ``x0`` for held-out data, with the
coupling's conditioning, so conditional models (inpainting, super-resolution, bridges) are sampled on unseen
inputs and their paired targets are returned for comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.data import ArrayDataset
from genlab.models import Field
from genlab.progress import ProgressBar
from genlab.samplers import sample as sample_field
from genlab.training.components import Components, collate, make_cond, split_labels

__all__ = ["Samples", "draw_samples", "reference_data", "save_picture"]


@dataclass
class Samples:
    """Samples of a run.

    Attributes:
        x: Generated samples ``(n, ...)``.
        nfe: Network evaluations used.
        sampler: Sampler name.
        steps: Grid steps.
        seconds: Wall time of the sampler call.
        x_init: Initial states (``None`` for a Gaussian source without a trajectory).
        target: Paired targets ``x1`` of the held-out inputs (conditional paths), else ``None``.
        labels: Class labels used (class-conditional networks), else ``None``.
        trajectory: ``(steps + 1, n, ...)`` states when requested.
        extra: Sampler ``aux`` output.
    """

    x: Tensor
    nfe: int
    sampler: str
    steps: int
    seconds: float
    x_init: Tensor | None
    target: Tensor | None = None
    labels: Tensor | None = None
    trajectory: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def draw_samples(
    field_: Field,
    components: Components,
    *,
    sampler: str,
    steps: int,
    n: int,
    seed: int = 0,
    grid: str | None = None,
    grid_options: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    device: torch.device | None = None,
    return_trajectory: bool = False,
    progress: bool | None = False,
) -> Samples:
    """Sample ``n`` points of a trained run.

    Args:
        field_: The Field (EMA or raw weights).
        components: The run's components (interpolant, coupling, held-out split).
        sampler: Registered sampler name.
        steps: Grid steps.
        n: Number of samples.
        seed: Seed of the initial noise, the coupling's draws on held-out data and stochastic samplers.
        grid: Grid name (``None``: the sampler's recommended grid).
        grid_options: Grid options.
        options: Sampler constructor options.
        device: Device (default: the Field's parameters').
        return_trajectory: Keep every state.
        progress: Show a bar over the sampler's steps (``None``: when stderr is a terminal, rank 0 only; off by
            default here because the Trainer samples during training).

    Returns:
        :class:`Samples`.
    """
    if device is None:
        params = list(field_.parameters())
        device = params[0].device if params else torch.device("cpu")
    interpolant = components.interpolant
    gen = torch.Generator().manual_seed(int(seed))
    target = labels = None
    cond: Any = None
    if interpolant.gaussian_source:
        x_init = None
        if components.needs_labels:
            num_classes = int(components.net.num_classes)
            labels = (torch.arange(n) % num_classes).to(device)
            cond = {"labels": labels}
    else:
        held_out = components.split.test
        idx = torch.arange(n) % len(held_out)
        batch, labels = split_labels(collate(held_out, idx), held_out)
        if not components.needs_labels:
            labels = None
        batch = tuple(b.to(device) for b in batch) if isinstance(batch, tuple) else batch.to(device)
        pair = components.coupling.sample(batch, generator=gen)
        x_init = pair.x0
        cond = make_cond(interpolant, pair, None if labels is None else labels.to(device))
        if pair.cond is not None or interpolant.conditional_source:
            target = pair.x1
    t0 = time.perf_counter()
    bar = ProgressBar(steps, desc=f"sampling ({sampler})", progress=progress)
    with bar:
        res = sample_field(
            field_,
            sampler,
            steps=steps,
            grid=grid,
            n=n,
            shape=components.data_shape,
            x_init=x_init,
            cond=cond,
            generator=gen,
            device=device,
            return_trajectory=return_trajectory,
            grid_options=grid_options,
            callback=bar.callback(),
            **(options or {}),
        )
    seconds = time.perf_counter() - t0
    traj = torch.stack(res.trajectory) if res.trajectory is not None else None
    init = x_init if x_init is not None else (res.trajectory[0] if res.trajectory is not None else None)
    return Samples(
        x=res.x,
        nfe=res.nfe,
        sampler=sampler,
        steps=steps,
        seconds=seconds,
        x_init=init,
        target=target,
        labels=labels,
        trajectory=traj,
        extra=dict(res.aux),
    )


def save_picture(
    x: Tensor,
    path: str | Path,
    *,
    reference: Tensor | None = None,
    title: str = "samples",
    trajectories: Tensor | None = None,
) -> Path | None:
    """A scatter plot (2-D points) or an image grid (``(n, C, H, W)``); ``None`` for other shapes.

    Args:
        x: Samples.
        path: Output PNG.
        reference: Data drawn next to 2-D samples.
        title: Panel title.
        trajectories: ``(T, n, 2)`` paths drawn on an extra panel (2-D only).

    Returns:
        The written path, or ``None`` if the shape has no picture.
    """
    from genlab.viz import image_grid, scatter_panels

    if x.ndim == 2 and x.shape[1] == 2:
        panels = ([("data", reference)] if reference is not None else []) + [(title, x)]
        return scatter_panels(panels, path, trajectories=trajectories)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return image_grid(x[:64], path, nrow=8, title=title)
    return None


def reference_data(dataset: ArrayDataset, n: int | None = None) -> Tensor:
    """The ``x1`` items of a dataset (``n`` evenly spaced rows if given).

    Evenly spaced rather than the first ``n``: a dataset stored in class order (MNIST-5k is sorted by label)
    would otherwise give a reference of one or two classes.
    """
    total = len(dataset)
    if n is None or n >= total:
        idx = torch.arange(total)
    else:
        idx = torch.div(torch.arange(n) * total, n, rounding_mode="floor")
    batch, _ = split_labels(collate(dataset, idx), dataset)
    if isinstance(batch, tuple):
        names = [k for k in dataset.item_names if k != "label"]
        batch = batch[names.index("x1")]
    return batch
