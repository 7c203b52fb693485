"""Analytic oracles: Gaussian mixtures, exact fields of every path, exact posteriors, Gaussian EOT plans."""

from genlab.analytic.denoiser import GMMDenoiser
from genlab.analytic.eot import GaussianEOTPlan, gaussian_eot_plan
from genlab.analytic.eot_benchmark import EOTBenchmark, eot_benchmark
from genlab.analytic.fields import (
    ConditionalGMM,
    ExactPosterior,
    PosteriorMeans,
    exact_field,
    posterior_means,
)
from genlab.analytic.gmm import GaussianMixture
from genlab.analytic.multimarginal import GaussianMarginals, edge_reparam_optimum
from genlab.analytic.posterior import gmm_posterior

__all__ = [
    "ConditionalGMM",
    "EOTBenchmark",
    "ExactPosterior",
    "GMMDenoiser",
    "GaussianEOTPlan",
    "GaussianMarginals",
    "GaussianMixture",
    "PosteriorMeans",
    "edge_reparam_optimum",
    "eot_benchmark",
    "exact_field",
    "gaussian_eot_plan",
    "gmm_posterior",
    "posterior_means",
]
