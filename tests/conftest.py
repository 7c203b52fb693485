"""Shared test fixtures: single-threaded torch, float64 helpers, seeded generators and small Gaussian mixtures.

Test modules live in folders without ``__init__.py``, so every test file name must be unique across ``tests/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from genlab.analytic import GaussianMixture

# The suite runs on a shared 2-core machine: tiny tensors gain nothing from threads.
torch.set_num_threads(1)


@pytest.fixture
def float64() -> Iterator[torch.dtype]:
    """Make float64 the default dtype for one test (restored afterwards)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def make_gen() -> Callable[[int], torch.Generator]:
    """Factory of seeded CPU generators: ``make_gen(seed)``."""

    def _make(seed: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return _make


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def gmm_source_2d() -> GaussianMixture:
    """Two-component 2-D source mixture with full, anisotropic covariances (float64)."""
    means = torch.tensor([[-1.5, 0.5], [1.0, -1.0]], dtype=torch.float64)
    covs = torch.tensor([[[0.5, 0.1], [0.1, 0.3]], [[0.4, -0.15], [-0.15, 0.6]]], dtype=torch.float64)
    return GaussianMixture(means, covs, torch.tensor([0.4, 0.6], dtype=torch.float64))


@pytest.fixture
def gmm_target_2d() -> GaussianMixture:
    """Three-component 2-D target mixture (float64)."""
    means = torch.tensor([[2.0, 2.0], [-2.0, 1.5], [0.5, -2.5]], dtype=torch.float64)
    covs = torch.tensor(
        [[[0.3, 0.05], [0.05, 0.2]], [[0.25, -0.1], [-0.1, 0.35]], [[0.15, 0.0], [0.0, 0.4]]], dtype=torch.float64
    )
    return GaussianMixture(means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


@pytest.fixture
def gmm_1d() -> GaussianMixture:
    """Bimodal 1-D mixture (float64)."""
    return GaussianMixture(
        torch.tensor([[-1.0], [2.0]], dtype=torch.float64),
        torch.tensor([0.3, 0.8], dtype=torch.float64),
        torch.tensor([0.35, 0.65], dtype=torch.float64),
    )
