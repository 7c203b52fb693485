"""Evaluation of a trained Field: sample-set metrics with their uncertainty, paired errors, validation loss.

Sample-set metrics (flattened samples against the held-out split):

* ``sw``: sliced 2-Wasserstein distance (``genlab.metrics.sliced_wasserstein``);
* ``mmd``: kernel MMD with the median-heuristic RBF mixture over five scales (``genlab.metrics.mmd``);
* ``energy``: energy distance (``genlab.metrics.energy_distance``);
* ``precision`` / ``recall``: improved k-NN precision and recall (Kynkäänniemi et al. 2019): blur lowers
  precision, missing modes lower recall;
* ``density`` / ``coverage``: Naeem et al. 2020 (k-NN balls around real points only);
* ``c2st``: held-out accuracy of a classifier telling samples from data (0.5 = indistinguishable);
* ``fd``: for 8×8 (or 16×16) digits, the Fréchet distance in the shipped digits classifier's feature space
  (``genlab.metrics.digits_fd``).

Every sample-set metric comes with its **data floor**: the same metric between as many training points and the
held-out data, over ``floor_draws`` disjoint training subsets (:func:`genlab.metrics.data_floor`), and — in
:func:`metric_reports` — the model's value over several sample seeds, so a table shows mean ± 95 % interval
for both and a verdict (:func:`genlab.metrics.compare`) that says whether the model is within the noise of the
data. Other metrics: ``val_loss`` (the training objective on the held-out split, fixed noise) and
``mse``/``psnr`` against the paired targets of conditional paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genlab.data import ArrayDataset
from genlab.metrics import (
    Estimate,
    MetricReport,
    classifier_two_sample_test,
    compare,
    data_floor,
    density_coverage,
    digits_fd,
    energy_distance,
    estimate,
    mmd,
    precision_recall,
    psnr,
    sliced_wasserstein,
)
from genlab.training.components import collate, to_device
from genlab.training.objective import InterpolantObjective
from genlab.training.sampling import Samples, reference_data

__all__ = [
    "HIGHER_IS_BETTER",
    "SET_METRICS",
    "MetricReport",
    "data_floors",
    "distances",
    "format_reports",
    "metric_reports",
    "overall_verdict",
    "paired_metrics",
    "sample_metrics",
    "set_metric",
    "validation_loss",
]

#: Metrics of a sample set against held-out data (each gets a data floor).
SET_METRICS: tuple[str, ...] = (
    "sw", "mmd", "energy", "precision", "recall", "density", "coverage", "c2st", "fd",
)
#: Set metrics where a larger value is better (the others are distances: smaller is better).
HIGHER_IS_BETTER: frozenset[str] = frozenset({"precision", "recall", "density", "coverage"})


def set_metric(name: str, x: Tensor, y: Tensor, *, n_projections: int = 256, seed: int = 0) -> float:
    """One sample-set metric between generated samples ``x`` and reference data ``y`` (flattened, float64).

    Args:
        name: One of :data:`SET_METRICS`.
        x: Samples ``(n, ...)``.
        y: Reference (held-out) data ``(m, ...)``.
        n_projections: Directions of the sliced Wasserstein distance.
        seed: Seed of the SW directions and of the C2ST split/initialisation.

    Returns:
        The value.
    """
    if name == "fd":
        shapes = ((1, 8, 8), (1, 16, 16), (1, 28, 28))
        if x.ndim != 4 or tuple(x.shape[1:]) not in shapes or y.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"metric 'fd' scores 8x8/16x16 digits or 28x28 MNIST (n, 1, H, W); got samples "
                f"{tuple(x.shape[1:])} and data {tuple(y.shape[1:])}: drop 'fd' from eval.metrics for this dataset "
                "(image_fid in genlab.metrics takes any feature extractor)"
            )
        # generated images are scored as images: clamped to the pixel range (as FID pipelines quantise to uint8),
        # so an under-trained model gets a large FD instead of a refusal
        xi, yi = x.detach().float().cpu().clamp(-1.0, 1.0), y.detach().float().cpu()
        if xi.shape[-1] == 28:  # the shipped MNIST classifier's features
            from genlab.metrics.mnist import MnistFD

            return float(MnistFD(yi).score(xi))
        return float(digits_fd(xi, yi))
    xs = x.detach().flatten(1).double().cpu()
    ys = y.detach().flatten(1).double().cpu()
    if name == "sw":
        gen = torch.Generator().manual_seed(seed)
        return float(sliced_wasserstein(xs, ys, n_projections=n_projections, generator=gen))
    if name == "mmd":
        return float(mmd(xs, ys))
    if name == "energy":
        return float(energy_distance(xs, ys))
    if name in ("precision", "recall"):
        return float(getattr(precision_recall(ys, xs), name))
    if name in ("density", "coverage"):
        return float(getattr(density_coverage(ys, xs), name))
    if name == "c2st":
        return float(classifier_two_sample_test(ys, xs, seed=seed).accuracy)
    raise ValueError(f"unknown sample-set metric {name!r}; allowed: {list(SET_METRICS)}")


def distances(
    x: Tensor, y: Tensor, metrics: Sequence[str], *, n_projections: int = 256, seed: int = 0
) -> dict[str, float]:
    """The requested sample-set metrics (:data:`SET_METRICS`) between two sample sets.

    Args:
        x: Samples ``(n, ...)``.
        y: Samples ``(m, ...)``.
        metrics: Names to compute (names that are not sample-set metrics are ignored).
        n_projections: Directions of the sliced Wasserstein distance.
        seed: Seed of the directions (and of the C2ST).

    Returns:
        ``{name: value}``.
    """
    return {m: set_metric(m, x, y, n_projections=n_projections, seed=seed) for m in SET_METRICS if m in metrics}


def data_floors(
    names: Sequence[str],
    train: ArrayDataset | Tensor,
    held_out: Tensor,
    *,
    n: int,
    draws: int = 5,
    n_projections: int = 256,
    seed: int = 0,
) -> dict[str, Estimate]:
    """The data floor of every sample-set metric in ``names`` (see :func:`genlab.metrics.data_floor`).

    Args:
        names: Metric names (those not in :data:`SET_METRICS` are ignored).
        train: Training split (dataset or tensor of ``x1`` items).
        held_out: Held-out data ``(m, ...)``.
        n: Points per draw (the number of model samples; capped by the training split).
        draws: Disjoint training subsets.
        n_projections: SW directions.
        seed: Seed of the subsets, SW directions and C2ST.

    Returns:
        ``{name: Estimate}``.
    """
    pool = train if isinstance(train, Tensor) else reference_data(train)
    n_ref = min(n, pool.shape[0])
    return {
        m: data_floor(
            lambda a, b, m=m: set_metric(m, a, b, n_projections=n_projections, seed=seed),
            pool, held_out, n=n_ref, draws=draws, seed=seed,
        )
        for m in SET_METRICS if m in names
    }


def sample_metrics(
    samples: Samples,
    train: ArrayDataset,
    test: ArrayDataset,
    metrics: Sequence[str],
    *,
    n_projections: int = 256,
    seed: int = 0,
    floor_draws: int = 5,
    floors: dict[str, Estimate] | None = None,
) -> dict[str, float]:
    """Metrics of one sample set against the held-out data, their floors, and paired errors.

    Args:
        samples: Output of :func:`genlab.training.sampling.draw_samples`.
        train: Training split (for the ``*_ref`` floors).
        test: Held-out split.
        metrics: Names among :data:`SET_METRICS`, ``mse``, ``psnr``.
        n_projections: SW directions.
        seed: SW / C2ST seed and seed of the floor's training subsets.
        floor_draws: Training subsets the floor is averaged over (see :func:`genlab.metrics.data_floor`).
        floors: Precomputed :func:`data_floors` for these metrics (a caller that evaluates repeatedly against the
            same data, like the Trainer, computes them once).

    Returns:
        ``{name: value, name_ref: floor mean}`` (``mse``/``psnr`` only when the samples have paired targets).
    """
    held_out = reference_data(test)
    out = distances(samples.x, held_out, metrics, n_projections=n_projections, seed=seed)
    if out:
        if floors is None or not set(out) <= set(floors):
            floors = data_floors(list(out), train, held_out, n=samples.x.shape[0], draws=floor_draws,
                                 n_projections=n_projections, seed=seed)
        out.update({f"{k}_ref": floors[k].mean for k in list(out)})
    out.update(paired_metrics(samples, metrics))
    return out


def paired_metrics(samples: Samples, metrics: Sequence[str]) -> dict[str, float]:
    """``mse``/``psnr`` of samples against their paired targets (empty when the samples have none)."""
    out: dict[str, float] = {}
    if samples.target is None:
        return out
    err = (samples.x.double() - samples.target.double()).pow(2)
    if "mse" in metrics:
        out["mse"] = float(err.mean())
    if "psnr" in metrics and samples.x.ndim == 4:
        out["psnr"] = float(psnr(samples.x.double().clamp(-1, 1), samples.target.double(), data_range=2.0).mean())
    return out


def metric_reports(
    sample_sets: Sequence[Tensor],
    train: ArrayDataset | Tensor,
    held_out: Tensor,
    metrics: Sequence[str],
    *,
    floor_draws: int = 5,
    n_projections: int = 256,
    seed: int = 0,
    floors: dict[str, Estimate] | None = None,
) -> dict[str, MetricReport]:
    """Every requested sample-set metric over several sample sets, against its data floor, with a verdict.

    Args:
        sample_sets: One tensor ``(n, ...)`` per sample seed (all of one size ``n``).
        train: Training split (dataset or tensor of ``x1`` items) for the floor.
        held_out: Held-out data ``(m, ...)``.
        metrics: Names (those not in :data:`SET_METRICS` are ignored).
        floor_draws: Disjoint training subsets of the floor (``>= 2`` for an interval).
        n_projections: SW directions.
        seed: Seed of the SW directions, the C2ST and the floor subsets.
        floors: Precomputed :func:`data_floors` (to share one floor between several models).

    Returns:
        ``{name: MetricReport}`` in :data:`SET_METRICS` order.
    """
    if not sample_sets:
        raise ValueError("metric_reports: sample_sets is empty; pass at least one sample set")
    names = [m for m in SET_METRICS if m in metrics]
    if floors is None:
        floors = data_floors(names, train, held_out, n=int(sample_sets[0].shape[0]), draws=floor_draws,
                             n_projections=n_projections, seed=seed)
    out: dict[str, MetricReport] = {}
    for m in names:
        if m not in floors:
            raise ValueError(f"metric_reports: floors has no entry for {m!r}; compute it with data_floors")
        model = estimate([set_metric(m, x, held_out, n_projections=n_projections, seed=seed) for x in sample_sets])
        verdict = compare(model, floors[m], lower_is_better=m not in HIGHER_IS_BETTER)
        out[m] = MetricReport(name=m, model=model, floor=floors[m], verdict=verdict,
                              higher_is_better=m in HIGHER_IS_BETTER)
    return out


def overall_verdict(reports: dict[str, MetricReport]) -> str:
    """One line: within noise of the data on every metric, or which metrics are worse and by how much."""
    if not reports:
        return "no sample-set metric"
    worse = [f"{r.name} by {abs(r.verdict.k):.1f}" for r in reports.values() if r.verdict.text.startswith("worse")]
    if not worse:
        return "within noise of the data on " + ", ".join(reports)
    return "worse than data (intervals): " + ", ".join(worse)


def format_reports(reports: dict[str, MetricReport], *, digits: int = 3) -> str:
    """A plain-text table: metric | model (mean ± 95 % CI over seeds) | data floor (mean ± CI) | verdict."""
    rows = [("metric", "model", "data floor", "verdict")]
    rows += [(r.name + (" ↑" if r.name in HIGHER_IS_BETTER else " ↓"), r.model.format(digits),
              r.floor.format(digits), r.verdict.text) for r in reports.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)


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
