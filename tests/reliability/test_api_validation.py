"""Issue 16 (reliability), API half: ``genlab.sample`` and ``log_likelihood`` end in a result or a clear
ValueError/TypeError naming the argument (each case raised IndexError, RuntimeError or AssertionError before)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import genlab
from genlab.analytic import GaussianMixture, exact_field
from genlab.checks import check_count, check_device, check_metrics, check_sample_dtype, check_shape
from genlab.interpolants import RectifiedFlow, VPDiffusion
from genlab.models import Field
from genlab.samplers.likelihood import REGULAR_T_END, default_t_end, log_likelihood


def _gmm() -> GaussianMixture:
    return GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64), 0.1)


class _Net(nn.Module):
    """A tiny time-conditioned network ``(x, t) -> velocity``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.cat([x, t.reshape(-1, 1).to(x.dtype).expand(x.shape[0], 1)], 1))


@pytest.fixture
def field() -> Field:
    return exact_field(RectifiedFlow(), "gaussian", _gmm(), "velocity")


@pytest.mark.parametrize("n", [0, -5])
def test_sample_rejects_bad_n(field, n) -> None:
    with pytest.raises(ValueError, match=r"^n must be a positive integer"):
        genlab.sample(field, "euler", steps=2, n=n, shape=(2,), seed=0)
    with pytest.raises(TypeError, match=r"^n must be a positive integer"):
        genlab.sample(field, "euler", steps=2, n=2.5, shape=(2,), seed=0)  # type: ignore[arg-type]


def test_sample_rejects_meta_and_missing_devices(field) -> None:
    with pytest.raises(ValueError, match="device='meta'"):
        genlab.sample(field, "euler", steps=2, n=3, shape=(2,), seed=0, device="meta")
    with pytest.raises(ValueError, match="is not a device"):
        genlab.sample(field, "euler", steps=2, n=3, shape=(2,), seed=0, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda'.*CUDA is not available"):
            genlab.sample(field, "euler", steps=2, n=3, shape=(2,), seed=0, device="cuda")


def test_sample_rejects_low_precision_and_mismatched_dtypes() -> None:
    net = _Net().double()
    fld = Field(net, RectifiedFlow(), "velocity")
    with pytest.raises(ValueError, match=r"dtype=torch.bfloat16 is not supported"):
        genlab.sample(fld, "euler", steps=2, n=3, shape=(2,), seed=0, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match=r"dtype=torch.float32 does not match the network's parameters"):
        genlab.sample(fld, "euler", steps=2, n=3, shape=(2,), seed=0, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"x_init.dtype"):
        genlab.sample(fld, "euler", steps=2, x_init=torch.zeros(3, 2))
    res = genlab.sample(fld, "euler", steps=2, n=3, shape=(2,), seed=0, dtype=torch.float64)
    assert res.x.dtype == torch.float64 and torch.isfinite(res.x).all()


def test_sample_rejects_non_finite_or_empty_x_init(field) -> None:
    for bad in (float("nan"), float("inf")):
        x = torch.zeros(4, 2, dtype=torch.float64)
        x[1, 0] = bad
        with pytest.raises(ValueError, match="x_init"):
            genlab.sample(field, "euler", steps=2, x_init=x)
    with pytest.raises(ValueError, match="no samples"):
        genlab.sample(field, "euler", steps=2, x_init=torch.zeros(0, 2, dtype=torch.float64))


def test_checks_name_the_argument() -> None:
    assert check_count(3) == 3 and check_shape([1, 4]) == (1, 4)
    with pytest.raises(TypeError, match="--n"):
        check_count(True, name="--n")
    with pytest.raises(ValueError, match=r"shape\[1\]"):
        check_shape((2, 0))
    with pytest.raises(TypeError, match="shape"):
        check_shape("2")
    assert check_device("cpu") == torch.device("cpu") and check_device("auto").type in ("cpu", "cuda")
    with pytest.raises(TypeError, match="dtype"):
        check_sample_dtype("float32")
    assert check_metrics("sw, mmd,sw", ("sw", "mmd")) == ["sw", "mmd"] and check_metrics(None, ("sw",)) is None


def test_log_likelihood_default_end_works_on_a_vp_noise_field() -> None:
    """README's VP field: the default t_end stops where the velocity is regular (it raised at t_end=1)."""
    target = _gmm()
    x = target.sample(16, generator=torch.Generator().manual_seed(0))
    x = x[0] if isinstance(x, tuple) else x
    fld = exact_field(VPDiffusion(), "gaussian", target, kind="noise")
    assert default_t_end(fld, x) == REGULAR_T_END
    with pytest.raises(ValueError, match="singular"):
        log_likelihood(fld, x, t_end=1.0)
    res = log_likelihood(fld, x)
    exact = target.log_prob(x)
    assert torch.allclose(res.log_prob, exact, atol=5e-3), (res.log_prob - exact).abs().max()
    # a path regular at t = 1 keeps t_end = 1 (unchanged results)
    rf = exact_field(RectifiedFlow(), "gaussian", target, kind="velocity")
    assert default_t_end(rf, x) == 1.0
    assert torch.equal(log_likelihood(rf, x).log_prob, log_likelihood(rf, x, t_end=1.0).log_prob)
    from genlab.metrics.likelihood import nll

    assert math.isfinite(float(nll(fld, x).mean()))
