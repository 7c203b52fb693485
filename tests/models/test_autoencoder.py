"""AutoEncoder (shapes, differentiability, overfitting a tiny batch) and the exact LinearAutoEncoder rig."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from genlab.models import AutoEncoder, LinearAutoEncoder


def _smooth_images(n: int, size: int, *, seed: int) -> torch.Tensor:
    """Digits-like images in [-1, 1]: random 4x4 patterns up-sampled bilinearly."""
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=False) * 2 - 1


def test_latent_shapes() -> None:
    x = torch.randn(3, 1, 16, 16)
    ae = AutoEncoder(1)
    z = ae.encode(x)
    assert z.shape == (3, 4, 4, 4) == (3, *ae.latent_shape(16, 16))
    assert ae.decode(z).shape == x.shape and ae(x).dtype == torch.float32
    ae2 = AutoEncoder(1, latent_channels=2, channels=(16,))
    assert ae2.encode(x).shape == (3, 2, 8, 8)
    assert AutoEncoder(3, channels=(8, 8, 8)).encode(torch.randn(2, 3, 8, 16)).shape == (2, 4, 1, 2)


def test_encode_decode_gradients_match_finite_differences() -> None:
    torch.manual_seed(0)
    ae = AutoEncoder(1, latent_channels=2, channels=(3,)).double()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ae.encode, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(ae.decode, (z,), eps=1e-6, atol=1e-6)


def test_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    x = _smooth_images(8, 16, seed=0)
    ae = AutoEncoder(1)
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    initial = ae.reconstruction_loss(x).item()
    for _ in range(150):
        loss = ae.reconstruction_loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = ae.reconstruction_loss(x).item()
    assert final < initial / 10, (initial, final)


def test_autoencoder_bad_arguments() -> None:
    ae = AutoEncoder(1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, H, W\).*in_channels=1"):
        ae.encode(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="multiple of 4"):
        ae.encode(torch.randn(2, 1, 10, 10))
    with pytest.raises(ValueError, match="latent_channels=4"):
        ae.decode(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="unknown activation"):
        AutoEncoder(1, activation="sigmoidal")
    with pytest.raises(ValueError, match="channels"):
        AutoEncoder(1, channels=())


def test_linear_autoencoder_is_an_exact_pseudo_inverse() -> None:
    ae = LinearAutoEncoder(8, 4, generator=torch.Generator().manual_seed(0))
    U = ae.decoder_matrix
    assert U.shape == (8, 4) and U.dtype == torch.float64
    torch.testing.assert_close(U.mT @ U, torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-14)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ae.encode(ae.decode(z)), z, rtol=0, atol=1e-14)
    # Pseudo-inverse: E = pinv(D) computed independently by SVD.
    torch.testing.assert_close(torch.linalg.pinv(U), U.mT, rtol=0, atol=1e-12)
    # decode(encode(x)) is the orthogonal projection onto range(U): the least-squares fit U z*.
    x = torch.randn(16, 8, generator=g, dtype=torch.float64)
    proj = ae(x)
    z_star = torch.linalg.lstsq(U, x.mT).solution
    torch.testing.assert_close(proj, (U @ z_star).mT, rtol=0, atol=1e-12)
    torch.testing.assert_close(ae(proj), proj, rtol=0, atol=1e-12)  # idempotent
    torch.testing.assert_close((x - proj) @ U, torch.zeros(16, 4, dtype=torch.float64), rtol=0, atol=1e-12)
    # float32 inputs work (U is cast per call) and keep their dtype and extra batch dims.
    out32 = ae.encode(x.float().reshape(4, 4, 8))
    assert out32.dtype == torch.float32 and out32.shape == (4, 4, 4)


def test_linear_autoencoder_seeding_and_from_matrix() -> None:
    a = LinearAutoEncoder(6, 2, generator=torch.Generator().manual_seed(3)).decoder_matrix
    b = LinearAutoEncoder(6, 2, generator=torch.Generator().manual_seed(3)).decoder_matrix
    c = LinearAutoEncoder(6, 2, generator=torch.Generator().manual_seed(4)).decoder_matrix
    assert torch.equal(a, b) and not torch.allclose(a, c)
    state = torch.get_rng_state()
    ae = LinearAutoEncoder.from_matrix(torch.eye(5)[:, :3])
    assert torch.equal(torch.get_rng_state(), state)  # no global RNG consumed
    x = torch.arange(10.0).reshape(2, 5)
    torch.testing.assert_close(ae.encode(x), x[:, :3], rtol=0, atol=0)
    with pytest.raises(ValueError, match="orthonormal"):
        LinearAutoEncoder.from_matrix(torch.ones(5, 2))
    with pytest.raises(ValueError, match="latent_dim=5 must not exceed dim=4"):
        LinearAutoEncoder(4, 5)
    with pytest.raises(ValueError, match="last dimension dim=5"):
        ae.encode(torch.randn(2, 4))
    with pytest.raises(ValueError, match="latent_dim=3"):
        ae.decode(torch.randn(2, 4))
