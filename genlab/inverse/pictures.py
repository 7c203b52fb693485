"""The picture of a solve: measurement | samples | posterior mean | posterior std | ground truth.

Images (per-sample shape ``(C, H, W)``) become one labelled row each; vectors of dimension 2 become scatter
panels (samples, their mean, the ground truth); other vectors get a per-coordinate picture (mean ± std bars).
The measurement is shown in image space through the operator's pseudo-inverse when it is linear and maps an
image to an image of another shape (``A†y``: masked pixels at 0, an upsampled low-resolution image), or as is
when its shape is the image shape already.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.inverse.problem import InverseProblem
from genlab.viz import require_matplotlib, save_figure

__all__ = ["measurement_image", "save_solve_picture"]


def measurement_image(problem: InverseProblem) -> Tensor | None:
    """``y`` shown in ``x``'s space: ``y`` itself when shapes agree, else ``A†y`` for linear operators.

    Returns:
        ``(1, *x_shape)`` or ``None`` when there is no faithful picture (a non-linear operator into another space).
    """
    y = problem.y[:1]
    x_shape = tuple(problem.x_shape)
    if tuple(y.shape[1:]) == x_shape:
        return y
    if problem.op.is_linear:
        with torch.no_grad():
            return problem.op.pinv(y)
    return None


def _rows_for_images(
    problem: InverseProblem, samples: Tensor, ground_truth: Tensor | None, n_show: int
) -> list[tuple[str, Tensor]]:
    rows: list[tuple[str, Tensor]] = []
    meas = measurement_image(problem)
    if meas is not None:
        rows.append(("measurement" if tuple(problem.y.shape[1:]) == tuple(problem.x_shape) else "A†y", meas))
    rows.append((f"samples ({min(n_show, samples.shape[0])} of {samples.shape[0]})", samples[:n_show]))
    if samples.shape[0] > 1:
        mean = samples.mean(0, keepdim=True)
        std = samples.std(0, keepdim=True)
        rows.append(("posterior mean", mean))
        rows.append((f"posterior std (max {float(std.max()):.2g}, scaled)", std / std.max().clamp_min(1e-12) * 2 - 1))
    if ground_truth is not None:
        rows.append(("ground truth", ground_truth[:1]))
    return rows


def save_solve_picture(
    samples: Tensor,
    problem: InverseProblem,
    path: str | Path,
    *,
    ground_truth: Tensor | None = None,
    n_show: int = 8,
    title: str | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> Path:
    """Write the picture of a solve to ``path`` (PNG, atomically).

    Args:
        samples: Posterior samples ``(n, *x_shape)`` (``SolveResult.samples``).
        problem: The problem that was solved (one measurement is shown: the first).
        path: Output PNG.
        ground_truth: The unknown ``x`` when known, ``(1, *x_shape)`` or ``x_shape``.
        n_show: Samples shown for images.
        title: Figure title (e.g. method, NFE, PSNR).
        value_range: Image value range.

    Returns:
        The written path.

    Raises:
        ValueError: If ``samples`` or ``ground_truth`` do not have the problem's ``x`` shape, or ``n_show < 1``.
    """
    x_shape = tuple(problem.x_shape)
    if samples.ndim != len(x_shape) + 1 or tuple(samples.shape[1:]) != x_shape:
        raise ValueError(f"samples must have shape (n, *{x_shape}); got {tuple(samples.shape)}")
    if isinstance(n_show, bool) or not isinstance(n_show, int) or n_show < 1:
        raise ValueError(f"n_show must be a positive int; got {n_show!r}")
    if ground_truth is not None:
        if tuple(ground_truth.shape) == x_shape:
            ground_truth = ground_truth[None]
        if tuple(ground_truth.shape[1:]) != x_shape:
            raise ValueError(f"ground_truth must have shape {x_shape} or (1, *{x_shape}); got {tuple(ground_truth.shape)}")
        ground_truth = ground_truth.detach().float().cpu()
    samples = samples.detach().float().cpu()
    plt = require_matplotlib()
    if len(x_shape) == 3:
        rows = [(name, t.detach().float().cpu()) for name, t in _rows_for_images(problem, samples, ground_truth, n_show)]
        lo, hi = value_range
        ncol = max(t.shape[0] for _, t in rows)
        fig, axes = plt.subplots(len(rows), 1, figsize=(max(3.0, 0.75 * ncol + 0.5), 0.95 * len(rows) + 0.4),
                                 squeeze=False)
        for ax, (name, imgs) in zip(axes[:, 0], rows):
            imgs = ((imgs.clamp(lo, hi) - lo) / (hi - lo))
            c, h, w = imgs.shape[1:]
            canvas = torch.ones(c, h + 2, ncol * (w + 1) + 1)
            for i in range(imgs.shape[0]):
                canvas[:, 1:1 + h, 1 + i * (w + 1):1 + i * (w + 1) + w] = imgs[i]
            ax.imshow(canvas.permute(1, 2, 0).squeeze(-1), cmap="gray" if c == 1 else None, vmin=0, vmax=1)
            ax.set_title(name, fontsize=8, loc="left")
            ax.axis("off")
    elif x_shape == (2,):
        fig, ax = plt.subplots(figsize=(4.0, 4.0))
        ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.4, label="samples")
        ax.scatter(*samples.mean(0).tolist(), marker="x", s=60, c="C1", label="posterior mean")
        if ground_truth is not None:
            ax.scatter(*ground_truth[0].tolist(), marker="*", s=120, c="k", label="ground truth")
        ax.legend(fontsize=7)
        ax.set_aspect("equal")
    elif len(x_shape) == 1:
        d = x_shape[0]
        fig, ax = plt.subplots(figsize=(min(12.0, 1.0 + 0.25 * d), 3.0))
        idx = torch.arange(d).float()
        ax.errorbar(idx, samples.mean(0), yerr=samples.std(0) if samples.shape[0] > 1 else None, fmt="o", ms=3,
                    capsize=2, label="posterior mean ± std")
        if ground_truth is not None:
            ax.scatter(idx, ground_truth[0], marker="*", c="k", s=25, label="ground truth", zorder=3)
        ax.set_xlabel("coordinate")
        ax.legend(fontsize=7)
    else:
        raise ValueError(f"no picture for per-sample shape {x_shape}; images (C, H, W) and vectors (d,) have one")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
