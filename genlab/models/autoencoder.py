"""Autoencoders for latent priors: a small convolutional one and an exact linear test rig."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genlab.models.layers import check_int, make_activation

__all__ = ["AutoEncoder", "LinearAutoEncoder"]


class AutoEncoder(nn.Module):
    r"""Deterministic convolutional autoencoder ``x ↦ z = E(x) ↦ x̂ = D(z)`` for latent diffusion priors.

    The encoder is a 3×3 stem, then for each entry ``c`` of ``channels`` a stride-2 3×3 convolution to
    ``c`` channels followed by a 3×3 convolution, and a 1×1 projection to ``latent_channels``; the decoder
    mirrors it with nearest-neighbour up-sampling. Each resolution level halves the size, so an ``H × W``
    image has a ``latent_channels × H/2^L × W/2^L`` code with ``L = len(channels)``: digits at 16×16 with
    the defaults give a 4×4×4 latent, with ``channels=(32,)`` and ``latent_channels=2`` an 8×8×2 one. Both
    maps are plain differentiable modules (latent-space guidance such as STSL or latent DPS back-propagates
    through ``decode``), and ``encode`` returns the code itself (the "mean" of a deterministic encoder).
    It is trained with :meth:`reconstruction_loss`; there is no KL term, so rescale the latents to unit
    variance before fitting a Gaussian-source prior on them (as Rombach et al., 2022, do with the scale
    factor of their latent diffusion models).

    Args:
        in_channels: Image channels.
        latent_channels: Channels of the latent code.
        channels: Channels per resolution level of the encoder (the decoder uses them in reverse).
        activation: Activation between convolutions (see :data:`genlab.models.layers.ACTIVATIONS`).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        latent_channels: int = 4,
        channels: Sequence[int] = (32, 64),
        activation: str = "silu",
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("latent_channels", latent_channels)
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or len(channels) == 0:
            raise ValueError(f"channels must be a non-empty sequence of ints; got {channels!r}")
        widths = [check_int("channels", c) for c in channels]
        make_activation(activation)
        self.in_channels = in_channels
        self.latent_channels = latent_channels
        self.downsample_factor = 2 ** len(widths)
        self._config: dict[str, Any] = {
            "in_channels": in_channels,
            "latent_channels": latent_channels,
            "channels": list(widths),
            "activation": activation,
        }

        enc: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), make_activation(activation)]
        prev = widths[0]
        for width in widths:
            enc += [
                nn.Conv2d(prev, width, 3, stride=2, padding=1),
                make_activation(activation),
                nn.Conv2d(width, width, 3, padding=1),
                make_activation(activation),
            ]
            prev = width
        enc.append(nn.Conv2d(prev, latent_channels, 1))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [
            nn.Conv2d(latent_channels, widths[-1], 3, padding=1),
            make_activation(activation),
        ]
        prev = widths[-1]
        for width in reversed(widths):
            dec += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(prev, width, 3, padding=1),
                make_activation(activation),
                nn.Conv2d(width, width, 3, padding=1),
                make_activation(activation),
            ]
            prev = width
        dec.append(nn.Conv2d(prev, in_channels, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable); ``AutoEncoder(**ae.config)`` rebuilds it."""
        return dict(self._config)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape ``(C, h, w)`` of the code of one ``height × width`` image.

        Args:
            height: Image height (a multiple of ``downsample_factor``).
            width: Image width (a multiple of ``downsample_factor``).

        Returns:
            ``(latent_channels, height // downsample_factor, width // downsample_factor)``.
        """
        f = self.downsample_factor
        if height % f or width % f or height < f or width < f:
            raise ValueError(
                f"image size {height}x{width} must be a positive multiple of {f} (2^len(channels), "
                f"channels={self._config['channels']}); resize/pad the images or use fewer levels in channels"
            )
        return (self.latent_channels, height // f, width // f)

    def encode(self, x: Tensor) -> Tensor:
        """Encode images.

        Args:
            x: Images of shape ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of ``downsample_factor``.

        Returns:
            Codes of shape ``(B, latent_channels, H / f, W / f)``.
        """
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, H, W) (in_channels={self.in_channels}); got {got}"
            )
        self.latent_shape(x.shape[2], x.shape[3])
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Decode latent codes.

        Args:
            z: Codes of shape ``(B, latent_channels, h, w)``.

        Returns:
            Images of shape ``(B, in_channels, h · f, w · f)``.
        """
        if not isinstance(z, Tensor) or z.ndim != 4 or z.shape[1] != self.latent_channels:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"z must have shape (B, {self.latent_channels}, h, w) "
                f"(latent_channels={self.latent_channels}); got {got}"
            )
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct ``x̂ = decode(encode(x))``."""
        return self.decode(self.encode(x))

    def reconstruction_loss(self, x: Tensor) -> Tensor:
        """Mean squared reconstruction error ``mean |x̂ − x|²`` (the training objective)."""
        return (self(x) - x).pow(2).mean()


class LinearAutoEncoder(nn.Module):
    r"""Linear autoencoder ``D(z) = U z``, ``E(x) = Uᵀ x`` with orthonormal columns ``U ∈ R^{d×k}``.

    The latent test rig of reference/inverse.md §5 (STSL / latent DPS): because ``UᵀU = I_k``, ``E`` is
    exactly the Moore–Penrose pseudo-inverse of ``D``, ``E(D(z)) = z`` and ``D(E(x)) = UUᵀx`` is the
    orthogonal projection onto the decoder's range, so latent posteriors stay in closed form. ``U`` is a
    buffer (fixed, saved in the state dict) drawn as the Q factor of a Gaussian matrix (sign-fixed so it is
    Haar-distributed), or given through :meth:`from_matrix`.

    Args:
        dim: Data dimension ``d``.
        latent_dim: Latent dimension ``k <= d``.
        generator: Generator for drawing ``U`` (its device decides where ``U`` is drawn; it is stored on
            CPU in float64 so that ``UᵀU = I`` holds to float64 round-off, and cast to the input's dtype and
            device per call).
    """

    decoder_matrix: Tensor

    def __init__(self, dim: int, latent_dim: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("latent_dim", latent_dim)
        if latent_dim > dim:
            raise ValueError(
                f"latent_dim={latent_dim} must not exceed dim={dim} (U needs orthonormal columns)"
            )
        device = generator.device if generator is not None else None
        gaussian = torch.randn(dim, latent_dim, generator=generator, device=device, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)
        q = q * torch.sign(torch.diagonal(r))[None, :]
        self.dim = dim
        self.latent_dim = latent_dim
        self._config: dict[str, Any] = {"dim": dim, "latent_dim": latent_dim}
        self.register_buffer("decoder_matrix", q.to(device="cpu"))

    @classmethod
    def from_matrix(cls, matrix: Tensor, *, atol: float = 1e-5) -> LinearAutoEncoder:
        """Build the rig around a given ``U`` of shape ``(d, k)`` with orthonormal columns.

        Args:
            matrix: The decoder matrix ``U``.
            atol: Tolerance on ``|UᵀU − I|``.

        Returns:
            A :class:`LinearAutoEncoder` whose buffer is ``matrix`` (same dtype and device).
        """
        if not isinstance(matrix, Tensor) or matrix.ndim != 2:
            raise ValueError("matrix must be a 2-D tensor U of shape (dim, latent_dim)")
        dim, latent_dim = matrix.shape
        gram = matrix.mT @ matrix
        eye = torch.eye(latent_dim, dtype=matrix.dtype, device=matrix.device)
        err = float((gram - eye).abs().max()) if latent_dim > 0 else 0.0
        if err > atol:
            raise ValueError(
                f"matrix must have orthonormal columns (UᵀU = I); max |UᵀU - I| = {err:.3g} > atol={atol}. "
                "Orthonormalise it first, e.g. with torch.linalg.qr(matrix).Q"
            )
        ae = cls(
            int(dim), int(latent_dim), generator=torch.Generator().manual_seed(0)
        )  # leaves global RNG alone
        ae.decoder_matrix = matrix.detach().clone()
        return ae

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable); ``U`` itself travels in the state dict."""
        return dict(self._config)

    def encode(self, x: Tensor) -> Tensor:
        """``z = Uᵀ x`` for inputs of shape ``(..., dim)``; returns ``(..., latent_dim)``."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have last dimension dim={self.dim}; got shape {tuple(x.shape)}")
        return x @ self.decoder_matrix.to(device=x.device, dtype=x.dtype)

    def decode(self, z: Tensor) -> Tensor:
        """``x = U z`` for codes of shape ``(..., latent_dim)``; returns ``(..., dim)``."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z must have last dimension latent_dim={self.latent_dim}; got shape {tuple(z.shape)}"
            )
        return z @ self.decoder_matrix.to(device=z.device, dtype=z.dtype).mT

    def forward(self, x: Tensor) -> Tensor:
        """The orthogonal projection ``UUᵀx`` onto the decoder's range."""
        return self.decode(self.encode(x))
