"""Analytic checks of the measurement operators (genlab.inverse.operators), all in float64.

Every linear operator is materialised as a dense matrix and checked against linear algebra on that matrix:
adjointness, the four Penrose conditions of ``pinv``, ``solve_reg`` against a dense solve, the optimality
condition of ``prox_l2``, the spectral norm and (where closed form) the SVD. Each operator is also checked
against an independent implementation: torch.roll loops, scipy.signal.convolve2d, torch's antialiased
bicubic resize, block means, numpy's FFT.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d
from scipy.stats import norm as normal_dist

from genlab.inverse.operators import (
    SVD,
    CompressedSensing,
    ConvBlur,
    DenseOperator,
    FFTBlur,
    GaussianNoise,
    Inpainting,
    Operator,
    PhaseRetrieval,
    SuperResolution,
    compose,
    conjugate_gradient,
    downsampling_matrix,
    gaussian_kernel,
    kernel_center,
    motion_kernel,
    power_method,
    real_fourier_analysis,
    real_fourier_synthesis,
)

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _kernel(*shape: int, seed: int) -> torch.Tensor:
    """A positive random kernel (well-conditioned enough for CG and pinv checks)."""
    k = torch.rand(*shape, generator=_gen(seed), dtype=DT) + 0.2
    return k / k.sum(dim=(-2, -1), keepdim=True)


def _low_rank(m: int, n: int, rank: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    return torch.randn(m, rank, generator=g, dtype=DT) @ torch.randn(rank, n, generator=g, dtype=DT)


# Each factory returns (operator, per-sample x_shape, uses_closed_forms).
CASES: dict[str, Callable[[], tuple[Operator, tuple[int, ...], bool]]] = {
    "inpaint_random": lambda: (
        Inpainting.random((3, 8, 8), 0.5, generator=_gen(1), dtype=DT),
        (3, 8, 8),
        True,
    ),
    "inpaint_box": lambda: (Inpainting.box((1, 8, 8), (2, 3, 4, 3), dtype=DT), (1, 8, 8), True),
    "inpaint_soft": lambda: (Inpainting(torch.rand(2, 4, 4, generator=_gen(2), dtype=DT)), (2, 4, 4), True),
    "fft_gauss": lambda: (FFTBlur(gaussian_kernel(3, 0.6, dtype=DT), (8, 8)), (2, 8, 8), True),
    "fft_odd_even": lambda: (FFTBlur(_kernel(3, 4, 3, seed=3), (3, 7, 6)), (3, 7, 6), True),
    "conv_valid": lambda: (ConvBlur(_kernel(3, 3, seed=4)), (2, 8, 8), False),
    "conv_same": lambda: (ConvBlur(_kernel(2, 4, 3, seed=5), padding="same"), (2, 8, 7), False),
    "conv_circular": lambda: (ConvBlur(_kernel(4, 3, seed=6), padding="circular"), (1, 7, 8), False),
    "sr_box2": lambda: (SuperResolution(2), (2, 8, 8), True),
    "sr_bicubic2": lambda: (SuperResolution(2, mode="bicubic"), (1, 8, 8), True),
    "sr_bicubic4": lambda: (SuperResolution(4, mode="bicubic"), (1, 16, 16), True),
    "cs": lambda: (CompressedSensing(10, (1, 4, 4), generator=_gen(7), dtype=DT), (1, 4, 4), True),
    "dense_tall_lowrank": lambda: (DenseOperator(_low_rank(12, 8, 5, seed=8)), (8,), True),
    "dense_wide": lambda: (DenseOperator(torch.randn(5, 8, generator=_gen(9), dtype=DT)), (8,), True),
    "compose_blur_mask": lambda: (
        FFTBlur(_kernel(3, 3, seed=10), (8, 8))
        @ Inpainting.random((1, 8, 8), 0.3, generator=_gen(11), dtype=DT),
        (1, 8, 8),
        False,
    ),
    "compose_sr_conv": lambda: (
        compose(SuperResolution(2), ConvBlur(_kernel(3, 3, seed=12))),
        (1, 10, 10),
        False,
    ),
}
SVD_CASES = [name for name in CASES if name.startswith(("inpaint", "fft", "sr", "cs", "dense"))]


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[Operator, tuple[int, ...], bool]:
    return CASES[request.param]()


def _dense_of(fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...]) -> torch.Tensor:
    """Matrix of a linear map on flattened samples, by applying it to the standard basis (as one batch)."""
    n = math.prod(in_shape)
    out = fn(torch.eye(n, dtype=DT).reshape(n, *in_shape))
    return out.reshape(n, -1).T


def _y_shape(op: Operator, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    return op.output_shape(x_shape)


# ------------------------------------------------------------------------------------------ linear invariants
def test_adjointness(case: tuple[Operator, tuple[int, ...], bool]) -> None:
    op, x_shape, _ = case
    g = _gen(100)
    x = torch.randn(3, *x_shape, generator=g, dtype=DT)
    y = torch.randn(3, *_y_shape(op, x_shape), generator=g, dtype=DT)
    lhs = (op.A(x) * y).flatten(1).sum(1)
    rhs = (x * op.At(y)).flatten(1).sum(1)
    scale = x.flatten(1).norm(dim=1) * y.flatten(1).norm(dim=1)
    assert torch.all((lhs - rhs).abs() <= 1e-10 * scale)
    # the adjoint as a matrix is the transpose of the forward matrix
    m = op.dense(x_shape)
    torch.testing.assert_close(_dense_of(op.At, _y_shape(op, x_shape)), m.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(op.A(x).flatten(1), x.flatten(1) @ m.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(op.AtA(x).flatten(1), x.flatten(1) @ (m.T @ m), rtol=0, atol=1e-12)


def test_pinv_satisfies_penrose_conditions(case: tuple[Operator, tuple[int, ...], bool]) -> None:
    op, x_shape, closed = case
    m = op.dense(x_shape)
    p = _dense_of(lambda y: op.pinv(y, tol=1e-13, max_iter=4000), _y_shape(op, x_shape))
    tol = 1e-8 if closed else 1e-6
    scale_m, scale_p = m.abs().max(), p.abs().max()
    assert (m @ p @ m - m).abs().max() <= tol * scale_m  # A A† A = A
    assert (p @ m @ p - p).abs().max() <= tol * scale_p  # A† A A† = A†
    assert ((m @ p) - (m @ p).T).abs().max() <= tol  # A A† symmetric
    assert ((p @ m) - (p @ m).T).abs().max() <= tol  # A† A symmetric
    # the four conditions define the Moore–Penrose inverse uniquely
    torch.testing.assert_close(p, torch.linalg.pinv(m), rtol=0, atol=1e-5 * float(scale_p))


def test_solve_reg_matches_dense_solve(case: tuple[Operator, tuple[int, ...], bool]) -> None:
    op, x_shape, _ = case
    m = op.dense(x_shape)
    n = m.shape[1]
    b = torch.randn(2, *x_shape, generator=_gen(101), dtype=DT)
    rho = torch.tensor([0.05, 3.0], dtype=DT)
    x = op.solve_reg(b, rho, tol=1e-13, max_iter=4000)
    for i in range(2):
        ref = torch.linalg.solve(m.T @ m + rho[i] * torch.eye(n, dtype=DT), b[i].reshape(-1))
        torch.testing.assert_close(x[i].reshape(-1), ref, rtol=0, atol=1e-9)
    x_scalar = op.solve_reg(b, 0.05, tol=1e-13, max_iter=4000)
    torch.testing.assert_close(x_scalar[0], x[0], rtol=0, atol=1e-9)


def test_prox_l2_optimality(case: tuple[Operator, tuple[int, ...], bool]) -> None:
    op, x_shape, _ = case
    g = _gen(102)
    z = torch.randn(2, *x_shape, generator=g, dtype=DT)
    y = torch.randn(2, *_y_shape(op, x_shape), generator=g, dtype=DT)
    gamma = torch.tensor([0.1, 5.0], dtype=DT)
    x = op.prox_l2(z, y, gamma, tol=1e-13, max_iter=4000)
    grad = op.At(op.A(x) - y) + (x - z) / gamma.view(2, *([1] * len(x_shape)))
    assert grad.abs().max() <= 1e-8 * (1 + z.abs().max() + y.abs().max())

    # strictly convex: a perturbation increases the objective
    def objective(u: torch.Tensor) -> torch.Tensor:
        return 0.5 * (op.A(u) - y).pow(2).flatten(1).sum(1) + (u - z).pow(2).flatten(1).sum(1) / (2 * gamma)

    assert torch.all(objective(x) < objective(x + 1e-3 * torch.randn(x.shape, generator=g, dtype=DT)))


def test_norm_is_largest_singular_value(case: tuple[Operator, tuple[int, ...], bool]) -> None:
    op, x_shape, closed = case
    ref = float(torch.linalg.matrix_norm(op.dense(x_shape), ord=2))
    assert op.norm(x_shape) == pytest.approx(ref, rel=1e-10 if closed else 1e-6)


@pytest.mark.parametrize("name", SVD_CASES)
def test_svd_reconstructs_dense(name: str) -> None:
    op, x_shape, _ = CASES[name]()
    assert op.has_svd
    svd = op.svd(x_shape)
    assert isinstance(svd, SVD)
    m = op.dense(x_shape)
    n = m.shape[1]
    y_shape = _y_shape(op, x_shape)
    assert svd.s.shape == (n,) and bool((svd.s >= 0).all())
    v = _dense_of(svd.V, (n,))  # (n, n)
    u = _dense_of(svd.U, (n,))  # (m, n)
    s = svd.s.to(DT)
    torch.testing.assert_close(u @ torch.diag(s) @ v.T, m, rtol=0, atol=1e-12)
    torch.testing.assert_close(v.T @ v, torch.eye(n, dtype=DT), rtol=0, atol=1e-12)  # V orthogonal
    torch.testing.assert_close(_dense_of(svd.Vt, x_shape), v.T, rtol=0, atol=1e-12)  # Vt = Vᵀ
    torch.testing.assert_close(_dense_of(svd.Ut, y_shape), u.T, rtol=0, atol=1e-12)  # Ut = Uᵀ
    support = s > 0
    gram = u.T @ u
    torch.testing.assert_close(
        gram[support][:, support], torch.eye(int(support.sum()), dtype=DT), rtol=0, atol=1e-12
    )
    # the singular values are those of the matrix (padded with zeros)
    k = min(m.shape)
    ref = torch.linalg.svdvals(m)
    torch.testing.assert_close(torch.sort(s, descending=True).values[:k], ref, rtol=0, atol=1e-12)
    tail = torch.sort(s, descending=True).values[k:]
    assert tail.numel() == 0 or float(tail.abs().max()) <= 1e-12
    x = torch.randn(2, *x_shape, generator=_gen(103), dtype=DT)
    torch.testing.assert_close(svd.apply(x), op.A(x), rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------------------------- blur
@pytest.mark.parametrize(
    ("kernel_shape", "image"),
    [((3, 3), (2, 8, 8)), ((4, 5), (1, 8, 7)), ((2, 3, 2), (2, 6, 9)), ((1, 1), (1, 4, 4))],
)
def test_fft_blur_equals_roll_loop(kernel_shape: tuple[int, ...], image: tuple[int, int, int]) -> None:
    k = torch.randn(*kernel_shape, generator=_gen(20), dtype=DT)
    x = torch.randn(2, *image, generator=_gen(21), dtype=DT)
    op = FFTBlur(k, image[-2:])
    k3 = k if k.ndim == 3 else k[None]
    ch, cw = kernel_center(tuple(k3.shape[-2:]))
    ref = torch.zeros_like(x)
    for a in range(k3.shape[-2]):
        for b in range(k3.shape[-1]):
            ref += k3[:, a, b][None, :, None, None] * torch.roll(x, shifts=(a - ch, b - cw), dims=(-2, -1))
    torch.testing.assert_close(op.A(x), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", "same", "circular"])
@pytest.mark.parametrize("kernel_shape", [(3, 3), (4, 2), (2, 3, 3)])
def test_conv_blur_dense_equals_scipy_convolve2d(padding: str, kernel_shape: tuple[int, ...]) -> None:
    k = torch.randn(*kernel_shape, generator=_gen(22), dtype=DT)
    x_shape = (2, 7, 8)
    op = ConvBlur(k, padding=padding)  # type: ignore[arg-type]
    k3 = (k if k.ndim == 3 else k[None].expand(2, -1, -1)).numpy()
    mode = "valid" if padding == "valid" else "same"
    boundary = "wrap" if padding == "circular" else "fill"
    n = math.prod(x_shape)
    cols = []
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        img = e.reshape(x_shape)
        cols.append(
            np.stack([convolve2d(img[c], k3[c], mode=mode, boundary=boundary) for c in range(2)]).ravel()
        )
    ref = torch.from_numpy(np.stack(cols, axis=1))
    torch.testing.assert_close(op.dense(x_shape), ref, rtol=0, atol=1e-12)


def test_fft_blur_equals_circular_conv_blur() -> None:
    k = _kernel(5, 4, seed=23)
    fft = FFTBlur(k, (9, 8))
    conv = ConvBlur(k, padding="circular")
    torch.testing.assert_close(fft.dense((2, 9, 8)), conv.dense((2, 9, 8)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(8, 8), (7, 8), (8, 7), (7, 7), (1, 5), (2, 1)])
def test_real_fourier_basis_is_orthonormal(size: tuple[int, int]) -> None:
    n = size[0] * size[1]
    v_t = real_fourier_analysis(torch.eye(n, dtype=DT).reshape(n, *size)).T  # columns: coefficients of e_j
    torch.testing.assert_close(v_t @ v_t.T, torch.eye(n, dtype=DT), rtol=0, atol=1e-12)
    c = torch.randn(3, n, generator=_gen(24), dtype=DT)
    torch.testing.assert_close(real_fourier_analysis(real_fourier_synthesis(c, size)), c, rtol=0, atol=1e-12)


def test_gaussian_kernel_formula() -> None:
    k = gaussian_kernel((5, 3), (1.5, 0.7), dtype=DT)
    i = torch.arange(5, dtype=DT)[:, None] - 2
    j = torch.arange(3, dtype=DT)[None, :] - 1
    ref = torch.exp(-(i**2) / (2 * 1.5**2) - j**2 / (2 * 0.7**2))
    torch.testing.assert_close(k, ref / ref.sum(), rtol=0, atol=1e-15)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-14)


def test_motion_kernel_geometry() -> None:
    horizontal = motion_kernel(7, 0.0, dtype=DT)
    assert float(horizontal.sum()) == pytest.approx(1.0, abs=1e-14)
    assert float(horizontal[3].sum()) == pytest.approx(1.0, abs=1e-14)  # all mass on the central row
    assert bool((horizontal[3] > 0).all())
    vertical = motion_kernel(7, 90.0, dtype=DT)
    torch.testing.assert_close(vertical, horizontal.T, rtol=0, atol=1e-12)
    diagonal = motion_kernel(9, 30.0, length=6.0, dtype=DT)
    torch.testing.assert_close(
        diagonal, torch.flip(diagonal, dims=(0, 1)), rtol=0, atol=1e-12
    )  # point-symmetric
    first_moment = (diagonal * (torch.arange(9, dtype=DT)[:, None] - 4)).sum()
    assert abs(float(first_moment)) < 1e-12  # centred
    # 45°: symmetric under the anti-diagonal reflection (row, col) -> (8 - col, 8 - row)
    d45 = motion_kernel(9, 45.0, dtype=DT)
    torch.testing.assert_close(d45, torch.flip(d45, dims=(0, 1)).T, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        motion_kernel(6, 0.0)
    with pytest.raises(ValueError, match="length"):
        motion_kernel(5, 0.0, length=7.0)


# ------------------------------------------------------------------------------------- super-resolution
def test_box_super_resolution_is_block_mean() -> None:
    x = torch.randn(2, 3, 12, 8, generator=_gen(30), dtype=DT)
    op = SuperResolution(4)
    ref = x.reshape(2, 3, 3, 4, 2, 4).mean(dim=(3, 5))
    torch.testing.assert_close(op.A(x), ref, rtol=0, atol=1e-14)
    m = op.dense((1, 8, 8))
    torch.testing.assert_close(m @ m.T, torch.eye(4, dtype=DT) / 16, rtol=0, atol=1e-15)  # A Aᵀ = I/f²


@pytest.mark.parametrize(("factor", "size"), [(2, (8, 8)), (3, (12, 6)), (4, (16, 8))])
def test_bicubic_matches_torch_antialiased_resize(factor: int, size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size, generator=_gen(31), dtype=DT)
    op = SuperResolution(factor, mode="bicubic")
    ref = F.interpolate(x, size=(size[0] // factor, size[1] // factor), mode="bicubic", antialias=True)
    torch.testing.assert_close(op.A(x), ref, rtol=0, atol=1e-12)
    ones = torch.ones(1, 1, *size, dtype=DT)
    torch.testing.assert_close(op.A(ones), torch.ones(1, 1, size[0] // factor, size[1] // factor, dtype=DT))
    d = downsampling_matrix(size[0], factor, "bicubic")
    torch.testing.assert_close(d.sum(dim=1), torch.ones(size[0] // factor, dtype=DT), rtol=0, atol=1e-14)


def test_super_resolution_factor_one_is_identity() -> None:
    for mode in ("box", "bicubic"):
        m = SuperResolution(1, mode=mode).dense((1, 4, 4))  # type: ignore[arg-type]
        torch.testing.assert_close(m, torch.eye(16, dtype=DT), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------------- inpainting
def test_random_mask_fraction_sharing_and_determinism() -> None:
    op = Inpainting.random((3, 64, 64), 0.3, generator=_gen(40))
    mask = op.mask
    missing = 1 - float(mask[0].mean())
    assert abs(missing - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4096)  # binomial, 4 standard errors
    assert torch.equal(mask[0], mask[1]) and torch.equal(mask[1], mask[2])  # whole pixels are masked
    assert torch.equal(Inpainting.random((3, 64, 64), 0.3, generator=_gen(40)).mask, mask)
    assert not torch.equal(Inpainting.random((3, 64, 64), 0.3, generator=_gen(41)).mask, mask)
    per_channel = Inpainting.random((3, 64, 64), 0.3, generator=_gen(40), per_channel=True).mask
    assert not torch.equal(per_channel[0], per_channel[1])
    assert float(Inpainting.random((1, 8, 8), 0.0, generator=_gen(0)).mask.min()) == 1.0
    assert float(Inpainting.random((1, 8, 8), 1.0, generator=_gen(0)).mask.max()) == 0.0


def test_box_mask_region() -> None:
    mask = Inpainting.box((2, 6, 7), (1, 2, 3, 4)).mask
    expected = torch.ones(2, 6, 7)
    expected[:, 1:4, 2:6] = 0
    assert torch.equal(mask, expected)
    assert int((mask == 0).sum()) == 2 * 3 * 4


def test_inpainting_pinv_fills_zeros_and_keeps_observed() -> None:
    op = Inpainting.box((1, 4, 4), (0, 0, 2, 2), dtype=DT)
    y = torch.randn(1, 1, 4, 4, generator=_gen(42), dtype=DT)
    x = op.pinv(y)
    assert torch.equal(x[..., :2, :2], torch.zeros(1, 1, 2, 2, dtype=DT))
    assert torch.equal(x[..., 2:, :], y[..., 2:, :])


# ---------------------------------------------------------------------------------- dense and CS
def test_compressed_sensing_scaling_and_determinism() -> None:
    a = CompressedSensing(64, 256, generator=_gen(50), dtype=DT)
    b = CompressedSensing(64, 256, generator=_gen(50), dtype=DT)
    assert torch.equal(a.matrix, b.matrix)
    assert a.x_shape == (256,) and a.y_shape == (64,)
    var = float(a.matrix.pow(2).mean())
    assert var == pytest.approx(1 / 64, rel=0.05)  # E Φ_ij² = 1/m, 16384 entries
    img = CompressedSensing(5, (1, 3, 3), generator=_gen(51))
    assert img.A(torch.randn(2, 1, 3, 3)).shape == (2, 5)


def test_dense_operator_svd_cache_follows_dtype() -> None:
    op = DenseOperator(torch.randn(4, 6, generator=_gen(52)))
    s32 = op.factors().s
    op = op.double()
    assert op.matrix.dtype == DT
    s64 = op.factors().s
    torch.testing.assert_close(s64, torch.linalg.svdvals(op.matrix), rtol=0, atol=1e-13)
    torch.testing.assert_close(s32.to(DT), s64, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------- non-linear
def test_phase_retrieval_vjp_equals_jacobian_transpose() -> None:
    op = PhaseRetrieval(oversampling=2.0)
    x = torch.randn(1, 2, 4, 4, generator=_gen(60), dtype=DT)
    y = op.A(x)
    assert y.shape == (1, 2, 6, 6)  # pad int(2/8·4) = 1 per side
    v = torch.randn(y.shape, generator=_gen(61), dtype=DT)
    jac = torch.autograd.functional.jacobian(lambda u: op.A(u), x).reshape(y.numel(), x.numel())
    torch.testing.assert_close(op.A_vjp(x, v).reshape(-1), jac.T @ v.reshape(-1), rtol=0, atol=1e-12)


def test_phase_retrieval_matches_numpy_fft_and_parseval() -> None:
    x = torch.randn(2, 1, 8, 8, generator=_gen(62), dtype=DT)
    op = PhaseRetrieval(oversampling=2.0)  # DPS: centred orthonormal FFT of the zero-padded image
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    centred = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(xp, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    torch.testing.assert_close(op.A(x), torch.from_numpy(np.abs(centred)), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.A(x).flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=0, atol=1e-12)
    unnormalised = PhaseRetrieval(oversampling=2.0, norm="backward")
    torch.testing.assert_close(unnormalised.A(x), op.A(x) * 12.0, rtol=0, atol=1e-12)  # √(12·12)
    torch.testing.assert_close(op.A(-x), op.A(x), rtol=0, atol=1e-12)
    assert not op.is_linear
    for method in (lambda: op.At(op.A(x)), lambda: op.pinv(op.A(x)), lambda: op.dense((1, 8, 8))):
        with pytest.raises(TypeError, match="non-linear"):
            method()


def test_nonlinear_composition_vjp() -> None:
    op = SuperResolution(2) @ PhaseRetrieval(oversampling=2.0)
    assert not op.is_linear
    x = torch.randn(1, 1, 4, 4, generator=_gen(63), dtype=DT)
    y = op.A(x)
    assert y.shape == (1, 1, 3, 3)
    v = torch.randn(y.shape, generator=_gen(64), dtype=DT)
    jac = torch.autograd.functional.jacobian(lambda u: op.A(u), x).reshape(y.numel(), x.numel())
    torch.testing.assert_close(op.A_vjp(x, v).reshape(-1), jac.T @ v.reshape(-1), rtol=0, atol=1e-12)


def test_linear_vjp_is_adjoint() -> None:
    op = ConvBlur(_kernel(3, 3, seed=65), padding="same")
    x = torch.randn(2, 1, 6, 6, generator=_gen(66), dtype=DT, requires_grad=True)
    v = torch.randn(2, 1, 6, 6, generator=_gen(67), dtype=DT)
    (grad,) = torch.autograd.grad(op.A(x), x, v)
    torch.testing.assert_close(op.A_vjp(x, v), grad, rtol=0, atol=1e-13)
    torch.testing.assert_close(op.At(v), grad, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------- composition
def test_composition_is_matrix_product() -> None:
    inner = ConvBlur(_kernel(3, 3, seed=70), padding="valid")
    outer = SuperResolution(2, mode="bicubic")
    op = outer @ inner
    m = op.dense((1, 10, 10))
    torch.testing.assert_close(m, outer.dense((1, 8, 8)) @ inner.dense((1, 10, 10)), rtol=0, atol=1e-13)
    assert op.is_linear and not op.has_svd
    with pytest.raises(ValueError, match="expects"):
        compose(FFTBlur(_kernel(3, 3, seed=71), (1, 8, 8)), Inpainting(torch.ones(1, 6, 6)))


# -------------------------------------------------------------------------------------------- noise
def test_gaussian_noise_sampling_and_likelihood() -> None:
    noise = GaussianNoise(0.3)
    y = torch.zeros(4, 1, 16, 16, dtype=DT)
    a = noise.sample(y, generator=_gen(80))
    assert torch.equal(a, noise.sample(y, generator=_gen(80)))
    assert torch.equal(a[:2], noise.sample(y[:2], generator=_gen(80)))  # batch-size invariant
    big = noise.sample(torch.zeros(1, 40000, dtype=DT), generator=_gen(81))
    assert float(big.std()) == pytest.approx(0.3, rel=0.02)
    obs = torch.randn(3, 5, generator=_gen(82), dtype=DT)
    pred = torch.randn(3, 5, generator=_gen(83), dtype=DT)
    ref = normal_dist.logpdf(obs.numpy(), loc=pred.numpy(), scale=0.3).sum(axis=1)
    torch.testing.assert_close(noise.log_likelihood(obs, pred), torch.from_numpy(ref), rtol=0, atol=1e-12)
    assert torch.equal(GaussianNoise(0.0).sample(obs), obs)
    with pytest.raises(ValueError, match="sigma = 0"):
        GaussianNoise(0.0).log_likelihood(obs, pred)
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(-1.0)


# -------------------------------------------------------------------------------------------- linalg
def test_conjugate_gradient_and_power_method() -> None:
    g = _gen(90)
    q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=DT)).Q
    eig = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1], dtype=DT)
    mat = q @ torch.diag(eig) @ q.T
    b = torch.randn(3, 6, generator=g, dtype=DT)
    res = conjugate_gradient(lambda v: v @ mat, b, tol=1e-14, max_iter=50)
    torch.testing.assert_close(res.x, torch.linalg.solve(mat, b.T).T, rtol=0, atol=1e-11)
    assert res.converged and res.n_iter <= 8  # CG terminates in ≤ n steps in exact arithmetic
    stopped = conjugate_gradient(lambda v: v @ mat, b, tol=1e-14, max_iter=2)
    assert not stopped.converged and stopped.n_iter == 2
    lam = power_method(lambda v: v @ mat, torch.randn(1, 6, generator=g, dtype=DT), tol=1e-14, n_iter=5000)
    assert lam == pytest.approx(5.0, rel=1e-10)


# ---------------------------------------------------------------------------------------- bad input
def test_clear_errors_for_bad_input() -> None:
    mask_op = Inpainting(torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match=r"shape \(B, 1, 8, 8\)"):
        mask_op.A(torch.zeros(2, 1, 8, 7))
    with pytest.raises(ValueError, match="add the batch dimension"):
        mask_op.A(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="batch-first"):
        DenseOperator(torch.ones(3, 4)).A(torch.zeros(4))
    with pytest.raises(TypeError, match="floating"):
        mask_op.A(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="p "):
        Inpainting.random((1, 8, 8), 1.5)
    with pytest.raises(ValueError, match="p "):
        Inpainting.random((1, 8, 8), -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Inpainting(torch.full((1, 4, 4), 2.0))
    with pytest.raises(ValueError, match="inside"):
        Inpainting.box((1, 8, 8), (6, 0, 4, 2))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="factor"):
            SuperResolution(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        SuperResolution(2, mode="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible by factor 2"):
        SuperResolution(2).A(torch.zeros(1, 1, 7, 8))
    with pytest.raises(ValueError, match="larger than the image"):
        FFTBlur(torch.ones(9, 9), (8, 8))
    with pytest.raises(ValueError, match=r"built for images of size \(8, 8\)"):
        FFTBlur(torch.ones(3, 3), (8, 8)).A(torch.zeros(1, 1, 6, 6))
    with pytest.raises(ValueError, match="channels"):
        ConvBlur(torch.ones(2, 3, 3)).A(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="padding"):
        ConvBlur(torch.ones(3, 3), padding="reflect")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x_shape"):
        DenseOperator(torch.ones(3, 4), x_shape=(5,))
    with pytest.raises(ValueError, match="m "):
        CompressedSensing(0, 4)
    with pytest.raises(ValueError, match="rho"):
        mask_op.solve_reg(torch.zeros(2, 1, 8, 8), 0.0)
    with pytest.raises(ValueError, match="gamma"):
        mask_op.prox_l2(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.ones(3))
    with pytest.raises(NotImplementedError, match="no closed-form SVD"):
        ConvBlur(torch.ones(3, 3)).svd((1, 8, 8))
    with pytest.raises(ValueError, match="pass x_shape"):
        ConvBlur(torch.ones(3, 3)).dense()
    with pytest.raises(ValueError, match="v must have shape"):
        PhaseRetrieval().A_vjp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


# ------------------------------------------------------------------------------------ dtype and device
def test_buffers_move_with_to_and_inputs_set_dtype() -> None:
    op = FFTBlur(gaussian_kernel(3, 1.0), (1, 8, 8))
    x64 = torch.randn(1, 1, 8, 8, dtype=DT)
    assert op.A(x64).dtype == DT  # float32 buffers, float64 computation
    assert op.double().kernel.dtype == DT
    comp = SuperResolution(2) @ Inpainting(torch.ones(1, 8, 8))
    assert comp.double().inner.mask.dtype == DT  # sub-operators move with the composition


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_operators_on_cuda_match_cpu() -> None:
    for name in sorted(CASES):
        op, x_shape, _ = CASES[name]()
        x = torch.randn(2, *x_shape, generator=_gen(110), dtype=DT)
        y = op.A(x)
        b = torch.randn(2, *x_shape, generator=_gen(111), dtype=DT)
        ref = (
            y,
            op.At(y),
            op.pinv(y, tol=1e-12, max_iter=2000),
            op.solve_reg(b, 0.5, tol=1e-12, max_iter=2000),
        )
        op_gpu = op.to("cuda")
        xg, yg, bg = x.cuda(), y.cuda(), b.cuda()
        out = (
            op_gpu.A(xg),
            op_gpu.At(yg),
            op_gpu.pinv(yg, tol=1e-12, max_iter=2000),
            op_gpu.solve_reg(bg, 0.5, tol=1e-12, max_iter=2000),
        )
        for r, o in zip(ref, out):
            assert o.device.type == "cuda", name
            torch.testing.assert_close(o.cpu(), r, rtol=0, atol=1e-8, msg=name)
        if op.has_svd:
            svd = op_gpu.svd(x_shape)
            torch.testing.assert_close(svd.apply(xg).cpu(), y, rtol=0, atol=1e-10, msg=name)
