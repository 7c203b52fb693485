"""Evaluation of a trained Field: sample-set distances to held-out data, paired errors, validation loss.

* ``sw``: sliced 2-Wasserstein distance (``genlab.metrics.sliced_wasserstein``) on flattened samples;
* ``mmd``: kernel MMD with the median-heuristic RBF mixture (``genlab.metrics.mmd``);
* ``energy``: energy distance (``genlab.metrics.energy_distance``);
* ``val_loss``: the training objective on the held-out split, with fixed noise (comparable across
  checkpoints);
* ``mse``/``psnr``: against the paired targets of conditional paths (inpainting, bridges), PSNR for images.

Each distance comes with a ``<name>_ref`` value: the same distance between held-out data and as many training
points, i.e. the floor a perfect model reaches at this sample size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.data import ArrayDataset
from genlab.metrics import energy_distance, mmd, psnr, sliced_wasserstein
from genlab.training.components import collate, to_device
from genlab.training.objective import InterpolantObjective
from genlab.training.sampling import Samples, reference_data

__all__ = ["distances", "sample_metrics", "validation_loss"]


def distances(
    x: Tensor, y: Tensor, metrics: Sequence[str], *, n_projections: int = 256, seed: int = 0
) -> dict[str, float]:
    """The requested distances among ``sw``, ``mmd``, ``energy`` between two sample sets (flattened, float64).

    Args:
        x: Samples ``(n, ...)``.
        y: Samples ``(m, ...)``.
        metrics: Names to compute (others are ignored).
        n_projections: Directions of the sliced Wasserstein distance.
        seed: Seed of the directions.

    Returns:
        ``{name: value}``.
    """
    xs = x.detach().flatten(1).double().cpu()
    ys = y.detach().flatten(1).double().cpu()
    out: dict[str, float] = {}
    if "sw" in metrics:
        out["sw"] = float(
            sliced_wasserstein(
                xs, ys, n_projections=n_projections, generator=torch.Generator().manual_seed(seed)
            )
        )
    if "mmd" in metrics:
        out["mmd"] = float(mmd(xs, ys))
    if "energy" in metrics:
        out["energy"] = float(energy_distance(xs, ys))
    return out


def sample_metrics(
    samples: Samples,
    train: ArrayDataset,
    test: ArrayDataset,
    metrics: Sequence[str],
    *,
    n_projections: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Distances of ``samples`` to the held-out data, their floors, and paired errors.

    Args:
        samples: Output of :func:`genlab.training.sampling.draw_samples`.
        train: Training split (for the ``*_ref`` floors).
        test: Held-out split.
        metrics: Names among ``sw``, ``mmd``, ``energy``, ``mse``, ``psnr``.
        n_projections: SW directions.
        seed: SW seed.

    Returns:
        ``{name: value}`` (``mse``/``psnr`` only when the samples have paired targets).
    """
    held_out = reference_data(test)
    out = distances(samples.x, held_out, metrics, n_projections=n_projections, seed=seed)
    if out:
        n_ref = min(len(train), samples.x.shape[0])
        floor_idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n_ref]
        floor = reference_data(train.subset(floor_idx))
        out.update(
            {
                f"{k}_ref": v
                for k, v in distances(
                    floor, held_out, metrics, n_projections=n_projections, seed=seed
                ).items()
            }
        )
    if samples.target is not None:
        err = (samples.x.double() - samples.target.double()).pow(2)
        if "mse" in metrics:
            out["mse"] = float(err.mean())
        if "psnr" in metrics and samples.x.ndim == 4:
            out["psnr"] = float(
                psnr(samples.x.double().clamp(-1, 1), samples.target.double(), data_range=2.0).mean()
            )
    return out


@torch.no_grad()
def validation_loss(
    objective: InterpolantObjective,
    model: nn.Module,
    dataset: ArrayDataset,
    *,
    batch_size: int,
    seed: int = 0,
    device: torch.device | None = None,
) -> float:
    """The objective on every item of ``dataset`` (in order, fixed noise), averaged over items.

    Args:
        objective: An objective that evaluates a given Field (:class:`InterpolantObjective`).
        model: Field (EMA or raw).
        dataset: Held-out split.
        batch_size: Evaluation batch size.
        seed: Seed of the coupling, times and noise.
        device: Device of the batches.

    Returns:
        The mean loss.
    """
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(dataset), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(dataset)))
            batch = collate(dataset, idx)
            if device is not None:
                batch = to_device(batch, device)
            out = objective(model, batch, generator=gen, antithetic=False)
            total += float(out.loss) * len(idx)
            count += len(idx)
    finally:
        model.train(was_training)
    return total / max(count, 1)
