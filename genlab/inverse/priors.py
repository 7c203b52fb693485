"""Priors for inverse problems: a diffusion/flow :class:`Field` on any Gaussian-source path, in pixel or latent space.

A genlab path with a Gaussian source is ``x_t = α(t)·ε + β(t)·x1`` (genlab time: 0 = noise, 1 = data). The
inverse-problem papers (``reference/inverse.md`` §0) write ``x_t = a·x0 + s·ε``: their *signal* coefficient ``a`` is
genlab's ``β(t)`` (``√ᾱ`` for VP), their *noise* coefficient ``s`` is genlab's ``α(t)`` (``√(1−ᾱ)`` for VP), their
x̂0 is genlab's x̂1 (the Tweedie denoiser E[x1 | x_t]) and their ε̂ is genlab's ``"x0"`` prediction. genlab keeps the
interpolant's names (:class:`~genlab.interpolants.schedules.Coeffs`: ``alpha``, ``beta``, ``gamma``) throughout
``inverse/``; every guidance method is written through ``alpha`` and ``beta``, so the same code runs on VP, VE
(β = 1) and rectified-flow / linear (β = t, α = 1 − t) priors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genlab.analytic import GaussianMixture, exact_field
from genlab.analytic.denoiser import GMMDenoiser  # moved to genlab.analytic; re-exported here
from genlab.interpolants.interpolant import Interpolant
from genlab.interpolants.schedules import Coeffs
from genlab.models.field import Field
from genlab.utils import RandomSource, append_dims, as_time, randn_per_sample

__all__ = ["DiffusionPrior", "GMMDenoiser", "HVAEPrior", "LatentPrior"]


class DiffusionPrior:
    """A pixel-space prior given by a :class:`~genlab.models.Field` on a Gaussian-source path.

    The field may predict any kind its path converts (``x1``, ``noise``/``x0``, ``velocity``, ``score``); the
    guidance methods read the Tweedie denoiser ``x̂1 = E[x1 | x_t]`` and the noise estimate ``ε̂`` from one network
    evaluation through :class:`genlab.samplers.Prediction`, so VP, VE and rectified-flow priors are
    interchangeable.

    Args:
        field: The prior's field (its interpolant must have a Gaussian source).
        shape: Per-sample shape of the state (optional; taken from the problem when omitted).
        name: Display name.
    """

    space: str = "pixel"

    def __init__(self, field: Field, *, shape: Sequence[int] | None = None, name: str | None = None) -> None:
        if not isinstance(field, Field):
            raise TypeError(
                f"field must be a genlab Field, got {type(field).__name__}; wrap the network with "
                "genlab.models.Field(net, interpolant, kind)"
            )
        interp = field.interpolant
        if not interp.gaussian_source:
            raise ValueError(
                f"a DiffusionPrior needs a path with a Gaussian source (x_t = α ε + β x1); {interp!r} has a data "
                "source. Use VPDiffusion(), VEDiffusion(), RectifiedFlow() or StochasticInterpolant(gamma='zero')"
            )
        self.field = field
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.name = name or f"{type(self).__name__}({interp.name}, {field.kind})"

    # ------------------------------------------------------------------ structure
    @property
    def interpolant(self) -> Interpolant:
        """The prior's path."""
        return self.field.interpolant

    @property
    def is_latent(self) -> bool:
        """Whether the state lives in an autoencoder's latent space."""
        return self.space == "latent"

    def parameters(self) -> list[nn.Parameter]:
        """Parameters of the field's network (for hooks and device queries)."""
        net = self.field.net
        return list(net.parameters()) if isinstance(net, nn.Module) else []

    def coeffs(self, t: Tensor | float, x: Tensor) -> Coeffs:
        """The path's coefficients at ``t`` for the batch ``x`` (float64 arithmetic, cast to ``x``'s dtype).

        Args:
            t: Time(s) in [0, 1].
            x: Batch (size, device, dtype).

        Returns:
            :class:`~genlab.interpolants.schedules.Coeffs` of shape ``(B,)``: ``beta`` is the data (signal)
            coefficient, ``alpha`` the noise coefficient of the Gaussian source.
        """
        return self.interpolant.schedule.coeffs(as_time(t, x)).to(x.dtype)

    def state_shape(self, x_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample shape of the diffusion state for images of shape ``x_shape`` (identity in pixel space)."""
        shape = tuple(int(s) for s in x_shape)
        if self.shape is not None and self.shape != shape:
            raise ValueError(f"the prior was built for per-sample shape {self.shape}; the problem has {shape}")
        return shape

    def initial_state(
        self,
        n: int,
        state_shape: Sequence[int],
        t: float,
        *,
        generator: RandomSource = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """The reverse process's starting point ``s(t)·ε`` (the signal term is dropped; it vanishes at t = 0 for
        VP and rectified flow and is the usual VE initialisation ``σ_max·ε``).

        Args:
            n: Number of samples.
            state_shape: Per-sample shape.
            t: Start time.
            generator: Per-sample streams, a generator (noise drawn per sample) or ``None``.
            device: Device.
            dtype: Dtype.

        Returns:
            ``(n, *state_shape)`` tensor.
        """
        eps = randn_per_sample((n, *state_shape), generator=generator, device=device, dtype=dtype)
        return append_dims(self.coeffs(t, eps).alpha, eps.ndim) * eps

    def encode(self, x: Tensor) -> Tensor:
        """Map pixels to the state space (identity for a pixel prior)."""
        return x

    def decode(self, z: Tensor) -> Tensor:
        """Map a state to pixels (identity for a pixel prior)."""
        return z

    # ------------------------------------------------------------------ analytic priors for tests
    @classmethod
    def from_gmm(
        cls,
        gmm: GaussianMixture,
        interpolant: Interpolant,
        *,
        implementation: str = "isotropic",
    ) -> DiffusionPrior:
        """The exact prior of a Gaussian-mixture data distribution (tests and benchmarks; no training).

        Args:
            gmm: Data distribution (vectors ``(d,)``).
            interpolant: Gaussian-source path.
            implementation: ``"isotropic"`` (:class:`GMMDenoiser`, closed form of ``reference/inverse.md`` §5.2,
                needs isotropic components; fast in any dimension) or ``"analytic"``
                (:func:`genlab.analytic.exact_field`, any covariances).

        Returns:
            A :class:`DiffusionPrior` whose field predicts ``x1`` exactly (differentiable to any order).
        """
        if implementation == "isotropic":
            field = Field(GMMDenoiser(gmm, interpolant), interpolant, "x1")
        elif implementation == "analytic":
            field = exact_field(interpolant, "gaussian", gmm, kind="x1")
        else:
            raise ValueError(f"implementation must be 'isotropic' or 'analytic', got {implementation!r}")
        return cls(field, shape=(gmm.dim,), name=f"GMMPrior(K={gmm.n_components}, d={gmm.dim}, {interpolant.name})")

    def __repr__(self) -> str:
        return self.name


class LatentPrior(DiffusionPrior):
    """A prior on an autoencoder's latents: ``x = D(z)`` with ``z`` drawn by a diffusion/flow :class:`Field`.

    The autoencoder must expose differentiable ``encode(x)`` and ``decode(z)`` (e.g.
    :class:`genlab.models.AutoEncoder`, or the exact linear rig :class:`genlab.models.LinearAutoEncoder`). Latents
    are standardised as in latent diffusion (Rombach et al., CVPR'22, §4.3): the field sees
    ``z = (E(x) − shift)/scale`` and pixels are ``D(scale·z + shift)``.

    Args:
        field: Field on the (standardised) latents, with a Gaussian source.
        autoencoder: Module with ``encode``/``decode``.
        scale: Latent scale factor (the std of the raw codes).
        shift: Latent shift (the mean of the raw codes).
        latent_shape: Per-sample latent shape (inferred by encoding zeros when omitted).
        name: Display name.
    """

    space: str = "latent"

    def __init__(
        self,
        field: Field,
        autoencoder: Any,
        *,
        scale: float = 1.0,
        shift: float = 0.0,
        latent_shape: Sequence[int] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(field, shape=latent_shape, name=name)
        for attr in ("encode", "decode"):
            if not callable(getattr(autoencoder, attr, None)):
                raise TypeError(
                    f"autoencoder must have a differentiable {attr}() (e.g. genlab.models.AutoEncoder); "
                    f"{type(autoencoder).__name__} has none"
                )
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"scale must be a float > 0 (std of the raw latents), got {scale!r}")
        self.autoencoder = autoencoder
        self.scale = float(scale)
        self.shift = float(shift)

    def encode(self, x: Tensor) -> Tensor:
        """Standardised latents ``(E(x) − shift)/scale``."""
        return (self.autoencoder.encode(x) - self.shift) / self.scale

    def decode(self, z: Tensor) -> Tensor:
        """Pixels ``D(scale·z + shift)`` (differentiable)."""
        return self.autoencoder.decode(z * self.scale + self.shift)

    def state_shape(self, x_shape: Sequence[int]) -> tuple[int, ...]:
        """Per-sample latent shape of images of shape ``x_shape``."""
        probe = torch.zeros((1, *x_shape), dtype=torch.float32)
        params = [p for p in (self.autoencoder.parameters() if isinstance(self.autoencoder, nn.Module) else [])]
        bufs = list(self.autoencoder.buffers()) if isinstance(self.autoencoder, nn.Module) else []
        ref = (params or bufs or [probe])[0]
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        with torch.no_grad():
            shape = tuple(self.encode(probe.to(device=ref.device, dtype=dtype)).shape[1:])
        if self.shape is not None and self.shape != shape:
            raise ValueError(f"the latent prior was built for latent shape {self.shape}; encoding gives {shape}")
        return shape


class HVAEPrior:
    """A hierarchical-VAE prior (PnP-HVAE, ``reference/inverse.md`` §1.8, §2): not a diffusion prior.

    The model must implement the HVAE protocol of :mod:`genlab.models.hvae`: ``n_levels``, ``event_shape``,
    ``bottom_up(x)`` (encoder activations), ``top_down(acts, select)`` (decoder that asks ``select(level, stats)``
    for each latent group and returns the decoder mean) — :class:`genlab.models.HVAE` (trained) and
    :class:`genlab.models.LinearGaussianHVAE` (exact, for tests) both do. PnP-HVAE replaces the decoder's output
    distribution by ``N(μ_θ(z), γ² I)`` with a fixed ``γ = decoder_std`` (Prost et al., ICCV'23, §4).

    Args:
        model: The hierarchical VAE.
        decoder_std: ``γ`` in data units (paper: 3–10/255 of a [0, 1] range; genlab's default 0.04 is
            ≈ 5/255 of a [-1, 1] range).
        name: Display name.

    Raises:
        TypeError: If ``model`` lacks part of the protocol.
        ValueError: For ``decoder_std ≤ 0``.
    """

    space: str = "pixel"
    is_latent: bool = False

    def __init__(self, model: Any, *, decoder_std: float = 0.04, name: str | None = None) -> None:
        missing = [a for a in ("bottom_up", "top_down") if not callable(getattr(model, a, None))]
        missing += [a for a in ("n_levels", "event_shape") if not hasattr(model, a)]
        if missing:
            raise TypeError(f"model must be a hierarchical VAE (genlab.models.HVAE or LinearGaussianHVAE); "
                            f"{type(model).__name__} lacks {missing}")
        ok = isinstance(decoder_std, (int, float)) and not isinstance(decoder_std, bool)
        if not (ok and decoder_std > 0 and decoder_std < float("inf")):
            raise ValueError(f"decoder_std must be a finite float > 0 (γ of the Gaussian decoder); got {decoder_std!r}")
        self.model = model
        self.decoder_std = float(decoder_std)
        self.name = name or f"HVAEPrior({type(model).__name__}, {model.n_levels} levels, γ={self.decoder_std:g})"

    @property
    def n_levels(self) -> int:
        """Number of latent groups."""
        return int(self.model.n_levels)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Per-sample data shape the model was built for."""
        return tuple(int(s) for s in self.model.event_shape)

    def parameters(self) -> list[nn.Parameter]:
        """The model's parameters."""
        return list(self.model.parameters()) if isinstance(self.model, nn.Module) else []

    def state_shape(self, x_shape: Sequence[int]) -> tuple[int, ...]:
        """``x_shape`` if it is the model's data shape (else a ``ValueError`` naming both)."""
        shape = tuple(int(s) for s in x_shape)
        if shape != self.event_shape:
            raise ValueError(f"the HVAE models data of per-sample shape {self.event_shape}; the problem's x has "
                             f"shape {shape}: use an operator built for x_shape={self.event_shape}")
        return shape

    def __repr__(self) -> str:
        return self.name
