"""Fourier time features and activations by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.models.layers import ACTIVATIONS, FourierTimeFeatures, make_activation


def test_fourier_features_match_closed_form() -> None:
    emb = FourierTimeFeatures(8, min_frequency=1.0, max_frequency=1000.0)
    omega = np.geomspace(1.0, 1000.0, 4)  # log-spaced: constant ratio 10
    t = torch.tensor([0.0, 0.25, 0.3002, 1.0], dtype=torch.float64)
    got = emb(t).numpy()
    angles = t.numpy()[:, None] * omega[None, :]
    want = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(emb.frequencies().numpy(), omega, rtol=1e-14)


def test_fourier_features_keep_dtype_and_single_pair() -> None:
    emb = FourierTimeFeatures(2, min_frequency=3.0, max_frequency=5.0)
    t = torch.tensor([0.5], dtype=torch.float32)
    out = emb(t)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[np.sin(1.5), np.cos(1.5)]], dtype=torch.float32))


@pytest.mark.parametrize("n", [0, 3, -2])
def test_fourier_features_reject_odd_sizes(n: int) -> None:
    with pytest.raises(ValueError, match="num_features"):
        FourierTimeFeatures(n)


def test_fourier_features_reject_bad_frequencies_and_shapes() -> None:
    with pytest.raises(ValueError, match="min_frequency"):
        FourierTimeFeatures(4, min_frequency=10.0, max_frequency=1.0)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        FourierTimeFeatures(4)(torch.zeros(3, 1))


def test_make_activation_known_and_unknown() -> None:
    for name, cls in ACTIVATIONS.items():
        assert isinstance(make_activation(name), cls)
    with pytest.raises(ValueError, match="unknown activation 'swishy'.*silu"):
        make_activation("swishy")
