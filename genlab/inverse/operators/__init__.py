"""Measurement operators for inverse problems ``y = A(x) + n``.

One module per family: :mod:`.base` (contract), :mod:`.inpainting`, :mod:`.blur` (+ :mod:`.kernels`),
:mod:`.superres`, :mod:`.dense`, :mod:`.compressed_sensing`, :mod:`.nonlinear`, :mod:`.composition`,
:mod:`.noise`; :mod:`.linalg` (CG, power method) and :mod:`.real_fourier` (real orthonormal Fourier basis).
"""

from genlab.inverse.operators.base import SVD, Operator, as_shape
from genlab.inverse.operators.blur import ConvBlur, FFTBlur
from genlab.inverse.operators.composition import ComposedOperator, compose
from genlab.inverse.operators.compressed_sensing import CompressedSensing
from genlab.inverse.operators.deepinv_adapter import DeepinvOperator, from_deepinv, to_deepinv
from genlab.inverse.operators.dense import DenseOperator
from genlab.inverse.operators.inpainting import Inpainting
from genlab.inverse.operators.kernels import gaussian_kernel, kernel_center, motion_kernel
from genlab.inverse.operators.linalg import (
    CGResult,
    batch_dot,
    conjugate_gradient,
    lanczos_max_eigenvalue,
    power_method,
)
from genlab.inverse.operators.noise import GaussianNoise
from genlab.inverse.operators.nonlinear import PhaseRetrieval
from genlab.inverse.operators.real_fourier import real_fourier_analysis, real_fourier_synthesis
from genlab.inverse.operators.superres import SuperResolution, downsampling_matrix

__all__ = [
    "SVD",
    "CGResult",
    "ComposedOperator",
    "CompressedSensing",
    "ConvBlur",
    "DeepinvOperator",
    "DenseOperator",
    "FFTBlur",
    "GaussianNoise",
    "Inpainting",
    "Operator",
    "PhaseRetrieval",
    "SuperResolution",
    "as_shape",
    "batch_dot",
    "compose",
    "conjugate_gradient",
    "downsampling_matrix",
    "from_deepinv",
    "gaussian_kernel",
    "kernel_center",
    "lanczos_max_eigenvalue",
    "motion_kernel",
    "power_method",
    "real_fourier_analysis",
    "real_fourier_synthesis",
    "to_deepinv",
]
