"""Two-sample metrics (precision/recall, density/coverage, C2ST) and the uncertainty layer (floors, verdicts).

The detection tests are the reason these metrics exist: a blurred copy of the moons and a mixture missing one
mode score *within noise of the data* under SW2 at the same sample size, while precision/density (blur) and
recall/coverage (missing mode) flag them.
"""

from __future__ import annotations

import math

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.data.toys import toy
from genlab.metrics import sliced_wasserstein
from genlab.metrics.twosample import (
    classifier_two_sample_test,
    density_coverage,
    precision_recall,
    wilson_interval,
)
from genlab.metrics.uncertainty import compare, data_floor, estimate, student_t_quantile

N = 500


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sw(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(sliced_wasserstein(x.double(), y.double(), n_projections=64, generator=_gen(0)))


def _moons(n: int, seed: int) -> torch.Tensor:
    return toy("moons", n, generator=_gen(seed))


def _twin_modes(missing: bool) -> GaussianMixture:
    """16 tight modes on a circle; ``missing`` drops mode 0 and gives its mass to its neighbour."""
    ang = torch.arange(16, dtype=torch.float64) * math.pi / 8
    means = 2.0 * torch.stack([ang.cos(), ang.sin()], 1)
    w = torch.ones(16, dtype=torch.float64)
    if missing:
        w[0], w[1] = 0.0, 2.0
    return GaussianMixture(means=means, covs=0.003, weights=w)


# ------------------------------------------------------------------------------------------------ exact values


def test_precision_recall_exact_small_sets() -> None:
    # real: 0, 1, 2 on a line; k = 1 radii: 1, 1, 1. fake: 0.5 (inside), 10 (outside) -> precision 1/2.
    # fake radii (k = 1): |10 - 0.5| = 9.5 each, so every real point is recalled -> recall 1.
    real = torch.tensor([[0.0], [1.0], [2.0]])
    fake = torch.tensor([[0.5], [10.0]])
    pr = precision_recall(real, fake, k=1)
    assert pr.precision == pytest.approx(0.5)
    assert pr.recall == pytest.approx(1.0)
    # density: 0.5 lies in the balls of 0 and 1 (radius 1) -> 2 balls / (k · m) = 2 / 2 = 1; coverage 2/3.
    dc = density_coverage(real, fake, k=1)
    assert dc.density == pytest.approx(1.0)
    assert dc.coverage == pytest.approx(2.0 / 3.0)


def test_wilson_and_student_t_known_values() -> None:
    low, high = wilson_interval(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert student_t_quantile(4) == pytest.approx(2.7764)
    assert student_t_quantile(1000) == pytest.approx(1.9623, abs=1e-3)
    e = estimate([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and e.std == pytest.approx(1.0)
    assert e.half_width == pytest.approx(4.3027 / math.sqrt(3))


def test_compare_direction_and_noise() -> None:
    floor = estimate([0.10, 0.11, 0.09, 0.10, 0.10])
    assert compare(estimate([0.10, 0.105, 0.095]), floor).within_noise
    worse = compare(estimate([0.30, 0.31, 0.29]), floor)
    assert not worse.within_noise and worse.k > 1 and worse.text.startswith("worse than data")
    # For a metric where higher is better (precision), a lower value is worse.
    v = compare(estimate([0.5, 0.51, 0.49]), estimate([0.95, 0.96, 0.94]), lower_is_better=False)
    assert v.text.startswith("worse")


# ------------------------------------------------------------------------------------- same distribution


def test_same_distribution_is_indistinguishable() -> None:
    real, fake = _moons(N, 2), _moons(N, 3)
    c2st = classifier_two_sample_test(real, fake)
    assert c2st.low <= 0.5 <= c2st.high, c2st
    pr = precision_recall(real, fake)
    assert pr.precision > 0.9 and pr.recall > 0.9, pr
    dc = density_coverage(real, fake)
    assert 0.8 < dc.density < 1.2 and dc.coverage > 0.9, dc


def test_c2st_separates_shifted_sets() -> None:
    real = torch.randn(400, 2, generator=_gen(0))
    fake = torch.randn(400, 2, generator=_gen(1)) + torch.tensor([1.5, 0.0])
    res = classifier_two_sample_test(real, fake)
    assert res.low > 0.7, res


# ------------------------------------------------------------------------- what SW2 misses at the same n


def _verdicts(metric_fns: dict, train: torch.Tensor, held_out: torch.Tensor, fakes: list[torch.Tensor]) -> dict:
    out = {}
    for name, (fn, lower_is_better) in metric_fns.items():
        floor = data_floor(fn, train, held_out, n=N, draws=5)
        out[name] = compare(estimate([fn(f, held_out) for f in fakes]), floor, lower_is_better=lower_is_better)
    return out


def test_blur_is_seen_by_precision_and_density_not_by_sw() -> None:
    train, held_out = _moons(5000, 1), _moons(N, 2)
    fakes = [_moons(N, 10 + s) + 0.15 * torch.randn(N, 2, generator=_gen(20 + s)) for s in range(3)]
    v = _verdicts(
        {
            "sw": (_sw, True),
            "precision": (lambda x, y: precision_recall(y, x).precision, False),
            "density": (lambda x, y: density_coverage(y, x).density, False),
        },
        train, held_out, fakes,
    )
    assert v["sw"].within_noise, v["sw"]
    assert v["precision"].text.startswith("worse"), v["precision"]
    assert v["density"].text.startswith("worse"), v["density"]


def test_missing_mode_is_seen_by_recall_and_coverage_not_by_sw() -> None:
    data, model = _twin_modes(missing=False), _twin_modes(missing=True)
    train, held_out = data.sample(10000, generator=_gen(1)), data.sample(N, generator=_gen(2))
    fakes = [model.sample(N, generator=_gen(10 + s)) for s in range(3)]
    v = _verdicts(
        {
            "sw": (_sw, True),
            "recall": (lambda x, y: precision_recall(y, x).recall, False),
            "coverage": (lambda x, y: density_coverage(y, x).coverage, False),
        },
        train, held_out, fakes,
    )
    assert v["sw"].within_noise, v["sw"]
    assert v["recall"].text.startswith("worse"), v["recall"]
    assert v["coverage"].text.startswith("worse"), v["coverage"]


# ------------------------------------------------------------------------------------------- calibration


def test_floor_prediction_interval_is_calibrated() -> None:
    """The floor's 95 % prediction interval holds a fresh independent draw in >= 90 % of 100 seeded trials."""
    hits, trials = 0, 100
    for trial in range(trials):
        train, held_out = _moons(3000, 100 + trial), _moons(200, 200 + trial)
        floor = data_floor(_sw, train, held_out, n=200, draws=5, seed=trial)
        low, high = floor.prediction_interval
        hits += low <= _sw(_moons(200, 300 + trial), held_out) <= high
    assert hits / trials >= 0.9, hits / trials


def test_floor_uses_disjoint_subsets_when_possible() -> None:
    train = torch.arange(20, dtype=torch.float64)[:, None]
    seen: list[set[float]] = []

    def record(x: torch.Tensor, y: torch.Tensor) -> float:
        seen.append(set(x.flatten().tolist()))
        return 0.0

    data_floor(record, train, train, n=5, draws=4)
    assert len(seen) == 4 and len(set().union(*seen)) == 20


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: precision_recall(torch.randn(5, 2), torch.randn(5, 3)), "differ in size"),
        (lambda: precision_recall(torch.randn(3, 2), torch.randn(5, 2), k=3), "k=3"),
        (lambda: precision_recall(torch.randn(5, 2), torch.randn(5, 2), k=0), "k must be"),
        (lambda: density_coverage(torch.full((5, 2), float("nan")), torch.randn(5, 2)), "NaN"),
        (lambda: classifier_two_sample_test(torch.randn(9, 2), torch.randn(9, 2), test_fraction=1.5), "test_fraction"),
        (lambda: estimate([]), "empty"),
        (lambda: data_floor(_sw, torch.randn(10, 2), torch.randn(10, 2), n=20), "exceeds"),
        (lambda: data_floor(_sw, torch.randn(10, 2), torch.randn(10, 2), n=2, draws=0), "draws"),
    ],
)
def test_bad_input_is_named(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
