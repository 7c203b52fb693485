"""Independent and Paired couplings: distribution, batch-size invariance, batch forms and errors."""

from __future__ import annotations

import pytest
import torch

from genlab.analytic import GaussianMixture
from genlab.couplings import CouplingSample, Independent, Paired


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_independent_gaussian_shapes_and_law() -> None:
    x1 = torch.rand(4000, 3, dtype=torch.float64) + 10.0
    out = Independent().sample(x1, generator=_gen())
    assert isinstance(out, CouplingSample)
    assert out.x1 is x1 and out.cond is None and out.mask is None
    assert out.x0.shape == x1.shape and out.x0.dtype == x1.dtype
    # x0 ~ N(0, I), independent of x1: mean 0, unit variance, no correlation (MC tolerances ~ 5 sigma)
    n = x1.shape[0]
    assert out.x0.mean(0).abs().max() < 5 / n**0.5
    assert (out.x0.var(0) - 1).abs().max() < 5 * (2 / n) ** 0.5
    corr = ((out.x0 - out.x0.mean(0)) * (x1 - x1.mean(0))).mean(0) / (out.x0.std(0) * x1.std(0))
    assert corr.abs().max() < 5 / n**0.5


def test_independent_is_batch_size_invariant_and_seeded() -> None:
    x1 = torch.randn(7, 2, 3, 3)
    big = Independent().sample(x1, generator=_gen(3)).x0
    small = Independent().sample(x1[:3], generator=_gen(3)).x0
    assert torch.equal(big[:3], small)
    again = Independent().sample(x1, generator=_gen(3)).x0
    other = Independent().sample(x1, generator=_gen(4)).x0
    assert torch.equal(big, again) and not torch.equal(big, other)


def test_independent_accepts_tuple_with_label() -> None:
    x1 = torch.randn(5, 4)
    labels = torch.arange(5)
    a = Independent().sample((x1, labels), generator=_gen(1))
    b = Independent().sample([x1, labels], generator=_gen(1))
    c = Independent().sample(x1, generator=_gen(1))
    assert a.x1 is x1 and torch.equal(a.x0, c.x0) and torch.equal(b.x0, c.x0)


class _Shifted:
    """A source with .sample(n, generator=): N(5, 1) in 2-D."""

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return 5.0 + torch.randn(n, 2, generator=generator, dtype=torch.float64)


def test_independent_custom_source_object_and_callable() -> None:
    x1 = torch.zeros(6, 2)
    out = Independent(_Shifted()).sample(x1, generator=_gen(2))
    expected = 5.0 + torch.randn(6, 2, generator=_gen(2), dtype=torch.float64)
    assert out.x0.dtype == x1.dtype
    torch.testing.assert_close(out.x0, expected.float())

    def fn(n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.full((n, 2), -3.0)

    assert torch.equal(Independent(fn).sample(x1).x0, torch.full((6, 2), -3.0))


def test_independent_bad_inputs() -> None:
    with pytest.raises(ValueError, match="gaussian"):
        Independent("uniform")
    with pytest.raises(TypeError, match="source"):
        Independent(3)
    with pytest.raises(ValueError, match="shape"):
        Independent(lambda n, generator=None: torch.zeros(n, 3)).sample(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="batch"):
        Independent().sample({"x": torch.zeros(2)})
    with pytest.raises(TypeError, match="floating"):
        Independent().sample(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty"):
        Independent().sample(torch.zeros(0, 2))
    with pytest.raises(TypeError, match="first element"):
        Independent().sample(("a", torch.zeros(2)))


def test_paired_returns_given_pairs() -> None:
    x0 = torch.randn(4, 3, dtype=torch.float64)
    x1 = torch.randn(4, 3)
    out = Paired().sample((x0, x1))
    assert out.x1 is x1 and out.cond is None
    assert out.x0.dtype == torch.float32 and torch.equal(out.x0, x0.float())
    with_cond = Paired(cond=True).sample([x0, x1])
    assert with_cond.cond is with_cond.x0


def test_paired_bad_inputs() -> None:
    x = torch.zeros(4, 3)
    with pytest.raises(TypeError, match="paired dataset"):
        Paired().sample(x)
    with pytest.raises(ValueError, match="exactly two"):
        Paired().sample((x, x, x))
    with pytest.raises(ValueError, match="same shape"):
        Paired().sample((torch.zeros(4, 2), x))
    with pytest.raises(TypeError, match="x0"):
        Paired().sample((torch.zeros(4, 3, dtype=torch.long), x))
    with pytest.raises(TypeError, match="cond"):
        Paired(cond=1)  # type: ignore[arg-type]


def test_independent_gaussian_mixture_source_has_mixture_moments(gmm_source_2d: GaussianMixture) -> None:
    x1 = torch.zeros(20000, 2, dtype=torch.float64)
    x0 = Independent(gmm_source_2d).sample(x1, generator=_gen(6)).x0
    torch.testing.assert_close(x0.mean(0), gmm_source_2d.mean, rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(x0.T), gmm_source_2d.cov, rtol=0, atol=0.06)
