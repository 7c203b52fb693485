"""Digits FD: shipped classifier, FD ordering on real vs corrupted digits, exact identities, bad input."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from genlab.data import Split, get_split
from genlab.metrics import (
    DigitsClassifier,
    DigitsFD,
    classifier_accuracy,
    digits_classifier_metadata,
    digits_fd,
    digits_features,
    frechet_distance,
    gaussian_moments,
)
from genlab.metrics.digits import DIGITS_CLASSIFIER_FILE, prepare_digits


@pytest.fixture(scope="module")
def split() -> Split:
    meta = digits_classifier_metadata()
    return get_split("digits", split_seed=meta["split_seed"], test_fraction=meta["test_fraction"])


@pytest.fixture(scope="module")
def clf() -> DigitsClassifier:
    return DigitsClassifier.load_pretrained()


@pytest.fixture(scope="module")
def fd_test(clf: DigitsClassifier) -> DigitsFD:
    return DigitsFD("test", classifier=clf)


def _blur(x: torch.Tensor, times: int = 1) -> torch.Tensor:
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    for _ in range(times):
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3))
    return x


def test_shipped_weights_metadata_and_size() -> None:
    meta = digits_classifier_metadata()
    assert meta["feature_dim"] == 64
    assert meta["test_accuracy"] >= 0.97
    assert meta["split_seed"] == 0
    assert meta["architecture"]["feature_dim"] == 64
    weights = resources.files("genlab").joinpath("assets", DIGITS_CLASSIFIER_FILE)
    assert len(weights.read_bytes()) < 200 * 1024


def test_shipped_classifier_reaches_recorded_accuracy(split: Split, clf: DigitsClassifier) -> None:
    x, y = split.test.tensors
    acc = classifier_accuracy(x, y, classifier=clf)
    recorded = digits_classifier_metadata()["test_accuracy"]
    assert abs(acc - recorded) <= 0.005
    assert acc >= 0.97
    # Labels that do not match the images: accuracy collapses (the metric reads the labels).
    wrong = classifier_accuracy(x, (y + 1) % 10, classifier=clf)
    assert wrong < 0.05
    # Classifying through a 16x16 nearest upsample gives the same predictions (average pooling inverts it).
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    assert classifier_accuracy(up, y, classifier=clf) == acc


def test_features_shape_and_no_dead_units(split: Split, clf: DigitsClassifier) -> None:
    f = digits_features(split.test.tensors[0], classifier=clf)
    assert f.shape == (359, 64) and f.dtype == torch.float32
    # every feature varies on the test split, so the feature covariance has full rank
    assert bool((f.std(dim=0) > 1e-3).all())
    # batching does not change features
    f_small = digits_features(split.test.tensors[0], classifier=clf, batch_size=50)
    torch.testing.assert_close(f_small, f, rtol=1e-5, atol=1e-5)


def test_fd_orders_real_above_corrupted_digits(split: Split, fd_test: DigitsFD) -> None:
    x_train = split.train.tensors[0]
    x_test = split.test.tensors[0]
    n = x_test.shape[0]
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(n, 1, 8, 8, generator=gen) * 2.0 - 1.0
    blurred = _blur(x_test, times=1)
    perm = torch.randperm(64, generator=gen)
    shuffled = x_test.flatten(1)[:, perm].view_as(x_test)

    fd_train = fd_test.score(x_train[:n])  # same sample size as the reference
    fd_noise = fd_test.score(noise)
    fd_blur = fd_test.score(blurred)
    fd_shuffled = fd_test.score(shuffled)
    print(
        f"digits FD vs test split: train {fd_train:.3f}, blurred {fd_blur:.2f}, "
        f"shuffled pixels {fd_shuffled:.2f}, uniform noise {fd_noise:.2f}"
    )
    assert 0.0 < fd_train < 30.0
    for bad in (fd_noise, fd_blur, fd_shuffled):
        assert bad > 10.0 * fd_train
    # more blur moves the features further away
    assert fd_test.score(_blur(x_test, times=2)) > fd_blur
    # the full training split is closer than a 359-image subset (the plug-in FD is biased up at small N)
    assert fd_test.score(x_train) < fd_train


def test_fd_zero_for_identical_sets_and_symmetric(
    split: Split, clf: DigitsClassifier, fd_test: DigitsFD
) -> None:
    x_train, x_test = split.train.tensors[0], split.test.tensors[0]
    assert 0.0 <= fd_test.score(x_test) <= 1e-6
    fd_train_ref = DigitsFD(x_train, classifier=clf)
    a = fd_test.score(x_train)
    b = fd_train_ref.score(x_test)
    assert a == pytest.approx(b, rel=1e-6)
    # the convenience function builds the same object
    assert digits_fd(x_train, classifier=clf) == pytest.approx(a, rel=1e-12)
    assert digits_fd(x_test, x_train, classifier=clf) == pytest.approx(b, rel=1e-12)


def test_fd_invariant_to_nearest_upsampling_to_16(split: Split, fd_test: DigitsFD) -> None:
    x_train = split.train.tensors[0]
    up = F.interpolate(x_train, scale_factor=2, mode="nearest")
    assert up.shape[-1] == 16
    torch.testing.assert_close(prepare_digits(up), x_train, rtol=0, atol=0)
    assert fd_test.score(up) == pytest.approx(fd_test.score(x_train), rel=1e-9, abs=1e-9)
    # bilinear upsampling is not inverted exactly by the pooling: a (small) different value
    bil = F.interpolate(x_train, scale_factor=2, mode="bilinear", align_corners=False)
    assert fd_test.score(bil) != pytest.approx(fd_test.score(x_train), rel=1e-3)
    # a 16x16 reference is pooled as well
    up_test = F.interpolate(split.test.tensors[0], scale_factor=2, mode="nearest")
    fd_up_ref = DigitsFD(up_test, classifier=fd_test.classifier)
    assert fd_up_ref.score(x_train) == pytest.approx(fd_test.score(x_train), rel=1e-9)


def _closed_form_fd(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    """Heusel et al. 2017 Eq. 6 with scipy's general matrix square root of Σ₁Σ₂."""
    cross = scipy.linalg.sqrtm(c1 @ c2)
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(cross).real)


def test_frechet_distance_matches_closed_form_for_gaussian_features() -> None:
    gen = torch.Generator().manual_seed(3)
    d = 64
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    b = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    c1, c2 = (
        a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64),
        b @ b.T + 0.05 * torch.eye(d, dtype=torch.float64),
    )
    m1 = torch.randn(d, generator=gen, dtype=torch.float64)
    m2 = m1 + 0.3 * torch.randn(d, generator=gen, dtype=torch.float64)
    exact = _closed_form_fd(m1.numpy(), c1.numpy(), m2.numpy(), c2.numpy())
    assert float(frechet_distance(m1, c1, m2, c2)) == pytest.approx(exact, rel=1e-8)
    # commuting (diagonal) covariances: ‖Δμ‖² + Σ (√a_i − √b_i)²
    da, db = (
        torch.rand(d, generator=gen, dtype=torch.float64) + 0.1,
        torch.rand(d, generator=gen, dtype=torch.float64),
    )
    diag = float((m1 - m2).pow(2).sum() + (da.sqrt() - db.sqrt()).pow(2).sum())
    assert float(frechet_distance(m1, torch.diag(da), m2, torch.diag(db))) == pytest.approx(diag, rel=1e-10)
    # Gaussian "features": the FD of sample moments converges to the population value
    n = 20000
    la, lb = torch.linalg.cholesky(c1), torch.linalg.cholesky(c2)
    xa = m1 + torch.randn(n, d, generator=gen, dtype=torch.float64) @ la.T
    xb = m2 + torch.randn(n, d, generator=gen, dtype=torch.float64) @ lb.T
    ma, mb = gaussian_moments(xa), gaussian_moments(xb)
    est = float(frechet_distance(ma.mean, ma.cov, mb.mean, mb.cov))
    assert est == pytest.approx(exact, rel=0.05)


def test_bad_inputs_are_rejected_clearly(split: Split, clf: DigitsClassifier, fd_test: DigitsFD) -> None:
    x = split.test.tensors[0][:10]
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        digits_features(x[:, 0], classifier=clf)
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        digits_features(F.interpolate(x, size=(12, 12)), classifier=clf)
    with pytest.raises(ValueError, match="x / 8 - 1"):
        digits_features((x + 1.0) * 8.0, classifier=clf)
    with pytest.raises(ValueError, match=r"2 \* x - 1"):
        digits_features((x + 1.0) / 2.0, classifier=clf)
    with pytest.raises(TypeError, match="floating"):
        digits_features(((x + 1) * 8).to(torch.uint8), classifier=clf)
    with pytest.raises(ValueError, match="NaN"):
        digits_features(torch.where(x > 0, torch.nan, x), classifier=clf)
    with pytest.raises(ValueError, match="at least 2"):
        fd_test.score(x[:1])
    with pytest.raises(ValueError, match="reference must be"):
        DigitsFD("validation", classifier=clf)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        classifier_accuracy(x, torch.zeros(9, dtype=torch.int64), classifier=clf)
    with pytest.raises(TypeError, match="integer"):
        classifier_accuracy(x, torch.zeros(10), classifier=clf)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        classifier_accuracy(x, torch.full((10,), 10), classifier=clf)
    # small overshoot (e.g. a sampler's last step) is clamped, not rejected
    over = x * 1.1
    assert fd_test.moments(over).mean.shape == (64,)
    torch.testing.assert_close(prepare_digits(over), over.clamp(-1.0, 1.0))
    with pytest.raises(ValueError, match="range_tolerance"):
        prepare_digits(over, range_tolerance=0.01)
