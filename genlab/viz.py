"""Plotting helpers (matplotlib imported lazily; install with ``pip install genlab[viz]``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from genlab.utils import atomic_write

__all__ = ["image_grid", "require_matplotlib", "save_figure", "scatter_panels"]


def require_matplotlib():
    """Import matplotlib with the Agg backend, or raise an ImportError with the install hint."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'genlab[viz]'") from err
    return plt


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Save ``fig`` atomically (temp file + rename) as PNG and close it."""
    plt = require_matplotlib()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def scatter_panels(panels: Sequence[tuple[str, Tensor]], path: str | Path, *,
                   trajectories: Tensor | None = None, lim: float | None = None) -> Path:
    """Side-by-side 2-D scatter plots (title, points) with optional trajectories on the last panel.

    Args:
        panels: ``(title, (n, 2) points)`` pairs.
        path: Output PNG.
        trajectories: ``(T, n, 2)`` paths drawn on the last panel.
        lim: Symmetric axis limit (default: from the data).

    Returns:
        The written path.
    """
    plt = require_matplotlib()
    k = len(panels) + (1 if trajectories is not None else 0)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.2), squeeze=False)
    pts = torch.cat([p.detach().float().cpu() for _, p in panels])
    lim = lim or float(pts.abs().quantile(0.995)) * 1.1
    for ax, (title, p) in zip(axes[0], panels):
        p = p.detach().float().cpu()
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
        ax.set_title(title, fontsize=9)
    if trajectories is not None:
        ax = axes[0][-1]
        tr = trajectories.detach().float().cpu()
        for j in range(min(tr.shape[1], 64)):
            ax.plot(tr[:, j, 0], tr[:, j, 1], lw=0.6, alpha=0.7)
        ax.scatter(tr[-1, :64, 0], tr[-1, :64, 1], s=4, c="k")
        ax.set_title("trajectories", fontsize=9)
    for ax in axes[0]:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, path)


def image_grid(images: Tensor, path: str | Path, *, nrow: int = 8, value_range: tuple[float, float] = (-1, 1),
               title: str | None = None) -> Path:
    """Save a grid of images ``(N, C, H, W)`` (C = 1 or 3) in ``value_range`` as PNG."""
    plt = require_matplotlib()
    imgs = images.detach().float().cpu().clamp(*value_range)
    imgs = (imgs - value_range[0]) / (value_range[1] - value_range[0])
    n, c, h, w = imgs.shape
    ncol = min(nrow, n)
    nr = (n + ncol - 1) // ncol
    canvas = torch.ones(c, nr * (h + 1) + 1, ncol * (w + 1) + 1)
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[:, 1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = imgs[i]
    fig, ax = plt.subplots(figsize=(ncol * 0.6 + 0.5, nr * 0.6 + 0.5))
    ax.imshow(canvas.permute(1, 2, 0).squeeze(-1), cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
