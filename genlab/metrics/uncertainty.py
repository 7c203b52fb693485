"""Numbers with their uncertainty: repeated-draw estimates, data floors and verdicts for benchmark tables.

A distance between ``n`` samples and held-out data is itself a random number: its value for a perfect model
(the *data floor*) moves by tens of percent between draws at CPU sample sizes. Every table genlab prints
therefore reports

* an :class:`Estimate` (mean, standard deviation and a Student-t 95 % interval of the mean over repeated draws or
  seeds, plus the 95 % *prediction* interval ``mean ± t·s·√(1 + 1/r)`` in which one fresh draw falls);
* the data floor from ``draws`` disjoint subsets of the training data (:func:`data_floor`);
* a :class:`Verdict` from a Welch comparison of two estimates (:func:`compare`): a difference is called real
  only when its 95 % interval excludes zero; otherwise it is "within noise".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Estimate", "MetricReport", "Verdict", "compare", "data_floor", "estimate", "student_t_quantile"]

# Two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)


def student_t_quantile(df: float) -> float:
    """The two-sided 95 % Student-t quantile ``t_{0.975}`` for ``df`` degrees of freedom.

    Table values for integer ``df ≤ 30`` (interpolated linearly in ``1/df`` between them, which is how the
    Welch–Satterthwaite non-integer ``df`` is usually read off a table), the Cornish–Fisher expansion beyond.

    Args:
        df: Degrees of freedom (``≥ 1``).

    Returns:
        The quantile.
    """
    if not df >= 1:
        raise ValueError(f"student_t_quantile: df must be >= 1; got {df!r}")
    if df <= 30:
        lo, hi = math.floor(df), math.ceil(df)
        if lo == hi:
            return _T975[lo - 1]
        w = (1 / df - 1 / hi) / (1 / lo - 1 / hi)
        return w * _T975[lo - 1] + (1 - w) * _T975[hi - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Estimate:
    """A quantity measured over repeated draws (or seeds).

    Attributes:
        mean: Mean over the draws.
        std: Sample standard deviation (0 for one draw).
        n: Number of draws.
        low: Lower end of the 95 % interval of the mean (``mean`` itself for one draw).
        high: Upper end of that interval.
        values: The draws.
    """

    mean: float
    std: float
    n: int
    low: float
    high: float
    values: tuple[float, ...] = field(default=(), repr=False)

    @property
    def half_width(self) -> float:
        """Half-width of the 95 % interval of the mean."""
        return 0.5 * (self.high - self.low)

    @property
    def prediction_interval(self) -> tuple[float, float]:
        """The 95 % interval in which one fresh draw falls: ``mean ± t·s·√(1 + 1/n)`` (needs ``n ≥ 2``)."""
        if self.n < 2:
            return (-math.inf, math.inf)
        half = student_t_quantile(self.n - 1) * self.std * math.sqrt(1.0 + 1.0 / self.n)
        return (self.mean - half, self.mean + half)

    def format(self, digits: int = 3) -> str:
        """``"mean ± half-width"`` with ``digits`` significant digits (``"mean"`` alone for one draw)."""
        if self.n < 2:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} ± {self.half_width:.2g}"

    def to_dict(self) -> dict[str, float | int | list[float]]:
        """JSON-ready form."""
        return {"mean": self.mean, "std": self.std, "n": self.n, "low": self.low, "high": self.high,
                "values": list(self.values)}


def estimate(values: Sequence[float] | Tensor) -> Estimate:
    """Mean, spread and Student-t 95 % interval of the mean of repeated draws.

    Args:
        values: One number per draw (at least one, all finite).

    Returns:
        :class:`Estimate`.
    """
    vals = [float(v) for v in (values.flatten().tolist() if isinstance(values, Tensor) else values)]
    if not vals:
        raise ValueError("estimate: values is empty; pass at least one draw")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"estimate: values must be finite; got {vals}")
    n = len(vals)
    mean = sum(vals) / n
    if n == 1:
        return Estimate(mean=mean, std=0.0, n=1, low=mean, high=mean, values=tuple(vals))
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = student_t_quantile(n - 1) * std / math.sqrt(n)
    return Estimate(mean=mean, std=std, n=n, low=mean - half, high=mean + half, values=tuple(vals))


@dataclass(frozen=True)
class Verdict:
    """The comparison of an estimate ``a`` with a reference ``b`` (Welch's two-sample interval).

    Attributes:
        difference: ``a.mean − b.mean``.
        low: Lower end of the 95 % interval of the difference.
        high: Upper end of that interval.
        k: The difference in units of its own 95 % half-width (``|k| ≤ 1``: within noise).
        text: One line for people: ``"within noise of the data"``, ``"worse than data by 3.2 intervals"``, …
    """

    difference: float
    low: float
    high: float
    k: float
    text: str

    @property
    def within_noise(self) -> bool:
        """Whether the interval of the difference covers zero."""
        return self.low <= 0.0 <= self.high


def compare(a: Estimate, b: Estimate, *, lower_is_better: bool = True, reference: str = "data") -> Verdict:
    """Whether ``a`` differs from ``b`` beyond the noise of both (Welch–Satterthwaite 95 % interval).

    Args:
        a: The estimate judged (e.g. a model's distance over seeds).
        b: The reference (e.g. :func:`data_floor`).
        lower_is_better: Direction of the metric (distances: True; precision, recall: False).
        reference: How the verdict names ``b``.

    Returns:
        :class:`Verdict`.
    """
    diff = a.mean - b.mean
    va, vb = (a.std**2 / a.n if a.n > 1 else 0.0), (b.std**2 / b.n if b.n > 1 else 0.0)
    se = math.sqrt(va + vb)
    if se == 0.0:
        half = 0.0
    else:
        den = (va**2 / (a.n - 1) if a.n > 1 else 0.0) + (vb**2 / (b.n - 1) if b.n > 1 else 0.0)
        df = max(1.0, (va + vb) ** 2 / den) if den > 0 else 1.0
        half = student_t_quantile(df) * se
    low, high = diff - half, diff + half
    if half == 0.0:
        k = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    else:
        k = diff / half
    if low <= 0.0 <= high:
        text = f"within noise of the {reference}"
    else:
        worse = (diff > 0) == lower_is_better
        text = f"{'worse' if worse else 'better'} than {reference} by {abs(k):.1f} intervals"
    return Verdict(difference=diff, low=low, high=high, k=k, text=text)


@dataclass(frozen=True)
class MetricReport:
    """A metric of a model over seeds, next to its reference floor, with a verdict.

    Attributes:
        name: Metric name.
        model: The model's value over sample seeds.
        floor: The floor (data against data, or exact samples against exact samples) over repeated draws.
        verdict: :func:`compare` of ``model`` against ``floor``.
        higher_is_better: Direction of the metric.
    """

    name: str
    model: Estimate
    floor: Estimate
    verdict: Verdict
    higher_is_better: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"model": self.model.to_dict(), "floor": self.floor.to_dict(), "verdict": self.verdict.text,
                "k": self.verdict.k, "higher_is_better": self.higher_is_better}


def data_floor(
    metric: Callable[[Tensor, Tensor], float | Tensor],
    train: Tensor,
    held_out: Tensor,
    *,
    n: int,
    draws: int = 5,
    seed: int = 0,
) -> Estimate:
    """The value a perfect model reaches: ``metric(subset of train, held_out)`` over repeated draws.

    The ``draws`` subsets of ``n`` training points are disjoint when the training split holds ``draws · n``
    points; otherwise each is drawn at random without replacement from the whole split (overlapping subsets make
    the spread an underestimate: raise the split or lower ``n``/``draws`` to avoid it).

    Args:
        metric: ``metric(x, y)`` → a number (e.g. ``sliced_wasserstein``).
        train: Training data ``(N, ...)``.
        held_out: Held-out data ``(M, ...)``.
        n: Points per draw (use the number of model samples, so the floor matches their sample size).
        draws: Number of draws (≥ 2 for an interval; default 5 is cheap on CPU for 2-D and 8×8 sets).
        seed: Seed of the subsets.

    Returns:
        :class:`Estimate` over the draws.
    """
    for name, value, least in (("n", n, 1), ("draws", draws, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"data_floor: {name} must be a positive integer; got {value!r}")
    total = train.shape[0]
    if n > total:
        raise ValueError(f"data_floor: n={n} exceeds the training split ({total} points); lower n")
    gen = torch.Generator().manual_seed(int(seed))
    if draws * n <= total:
        perm = torch.randperm(total, generator=gen)
        subsets = [perm[i * n:(i + 1) * n] for i in range(draws)]
    else:
        subsets = [torch.randperm(total, generator=gen)[:n] for _ in range(draws)]
    values = [float(metric(train[idx.to(train.device)], held_out)) for idx in subsets]
    return estimate(values)
