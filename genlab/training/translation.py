"""Pictures of unpaired-translation runs (``data: {name: unpaired, ...}``): what ``genlab sample`` draws for them.

* 2-D points: four panels — the held-out *source* points the SDE starts from, the held-out *target* data, the
  *translated* points, and the sampler's trajectories (the first 64 paths) from source to target.
* Images: a grid whose rows hold 4 sources followed by their 4 translations (``source | translated``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.data import get_split
from genlab.training.config import RunConfig, load_config
from genlab.training.sampling import Samples, reference_data

__all__ = ["is_translation_run", "save_translation_picture", "translation_grid"]


def _config(run: str | Path | RunConfig) -> RunConfig | None:
    if isinstance(run, RunConfig):
        return run
    path = Path(run) / "config.yaml"
    return load_config(path) if path.is_file() else None


def is_translation_run(run: str | Path | RunConfig) -> bool:
    """Whether a run (folder or config) translates between two unpaired data sets (``data.name: unpaired``)."""
    cfg = _config(run)
    return cfg is not None and cfg.data.name == "unpaired"


def translation_grid(source: Tensor, translated: Tensor, *, per_row: int = 4, rows: int = 8) -> Tensor:
    """Images ordered so that an ``2·per_row``-column grid shows ``per_row`` sources then their translations.

    Args:
        source: ``(n, C, H, W)`` source images.
        translated: ``(n, C, H, W)`` their translations (same order).
        per_row: Pairs per grid row.
        rows: Grid rows (fewer if ``n`` is small).

    Returns:
        ``(2·per_row·rows', C, H, W)`` images for :func:`genlab.viz.image_grid` with ``nrow = 2·per_row``.

    Raises:
        ValueError: If the shapes differ.
    """
    if source.shape != translated.shape or source.ndim != 4:
        raise ValueError(f"source and translated must be (n, C, H, W) alike; got {tuple(source.shape)} and "
                         f"{tuple(translated.shape)}")
    rows = max(1, min(rows, source.shape[0] // per_row))
    out = []
    for r in range(rows):
        sl = slice(r * per_row, (r + 1) * per_row)
        out += [source[sl], translated[sl]]
    return torch.cat(out)


def save_translation_picture(run: str | Path | RunConfig, samples: Samples, path: str | Path, *,
                             title: str = "translated", target: Tensor | None = None) -> Path:
    """Write the translation picture of ``samples`` (drawn by :func:`~genlab.training.sample_run`) to ``path``.

    Args:
        run: Run folder or its config (for the held-out target data).
        samples: The samples (``x_init`` = sources; ``trajectory`` drawn for 2-D points when present).
        path: Output PNG.
        title: Title of the translated panel.
        target: Held-out target points for the 2-D panel (default: read from the run's data split).

    Returns:
        The written path.

    Raises:
        ValueError: If the run is not a translation run, or the samples have neither 2-D points nor images.
    """
    from genlab.viz import image_grid, scatter_panels

    cfg = _config(run)
    if cfg is None or not is_translation_run(cfg):
        raise ValueError(f"{run!r} is not an unpaired-translation run (data.name: unpaired)")
    if samples.x_init is None:
        raise ValueError("the samples carry no source points (x_init); draw them with sample_run from the run")
    x, src = samples.x.detach().cpu(), samples.x_init.detach().cpu()
    if x.ndim == 2 and x.shape[1] == 2:
        if target is None:
            d = cfg.data
            split = get_split(d.name, test_fraction=d.test_fraction, split_seed=d.split_seed, **d.kwargs)
            target = reference_data(split.test, x.shape[0])
        target = target.cpu()
        traj = samples.trajectory[:, :64].cpu() if samples.trajectory is not None else None
        return scatter_panels([("source", src), ("target", target), (title, x)], path, trajectories=traj)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        grid = translation_grid(src, x)
        return image_grid(grid, path, nrow=8, title=f"source (left 4) | {title} (right 4)")
    raise ValueError(f"samples of shape {tuple(x.shape[1:])} have no translation picture; use a .pt output")
