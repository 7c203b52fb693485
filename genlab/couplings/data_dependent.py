r"""Data-dependent couplings ``π(x0, x1) = ρ1(x1) ρ0(x0 | x1)`` (Albergo, Goldstein, Boffi, Ranganath &
Vanden-Eijnden, "Stochastic interpolants with data-dependent couplings", ICML 2024).

The base sample is built from the target itself, ``x0 = m(x1) + σζ`` with ``ζ ~ N(0, I)`` (paper Eq. 18,
Algorithm 1), and the network may additionally see a conditioning input ``ξ`` (Appendix A). Shipped instances:

* :class:`DataDependent` — any map ``m`` (generic Eq. 18);
* :func:`downsample_map` / :class:`SuperResolution` — ``x0 = U(D(x1)) + σζ``, ``ξ = U(D(x1))`` (§4.2);
* :class:`MaskedCoupling` — inpainting, ``x0 = ξ∘x1 + (1−ξ)∘ζ`` with a random tile mask ``ξ`` (§4.1).

Paper experiments use ``γ ≡ 0``: ``I_t = α_t x0 + β_t x1`` (Eq. 20); any genlab interpolant takes these pairs.

Every coupling here takes ``coupled=False`` for the paper's baseline (§4.1-4.2, "uncoupled"): ``x0 = ζ`` is pure
Gaussian noise independent of ``x1``, and the network receives the same conditioning input ``ξ`` as the coupled
model, so the two differ only in the coupling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.couplings.base import Coupling, CouplingSample, unpack_target
from genlab.utils import randn_like_per_sample

__all__ = [
    "DataDependent",
    "DownsampleMap",
    "MaskedCoupling",
    "SuperResolution",
    "downsample_map",
    "mask_velocity",
    "tile_mask",
]


def _check_sigma(sigma: object) -> float:
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, (int, float))
        or not math.isfinite(sigma)
        or sigma < 0
    ):
        raise ValueError(
            f"sigma must be a finite float >= 0 (noise scale of x0 = m(x1) + sigma*zeta); got {sigma!r}"
        )
    return float(sigma)


def _check_image(x: Tensor, *, name: str, who: str) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{who}: {name} must be an image batch of shape (B, C, H, W); got shape {tuple(x.shape)}"
        )


class DataDependent(Coupling):
    r"""Data-dependent coupling ``x0 = m(x1) + σζ``, ``ζ ~ N(0, I)`` (Albergo et al., ICML 2024, Eq. 18, Alg. 1).

    ``m(x1)`` is the corrupted observation (low-resolution, blurred, autoencoded, ... image) available at
    sampling time; ``σζ`` smooths the base density so it has full support (§4.2) and keeps the score available
    with ``γ ≡ 0`` (§3.2). With ``cond=True`` the network also receives ``ξ = m(x1)`` as ``cond`` (appended
    channels for images, as in the paper's super-resolution experiment). With ``m(x1) = x1`` and the linear
    interpolant the transport-cost bound of Prop. 3.1 is ``dσ²`` (§3.3).

    ``ζ`` is drawn one sample at a time (:func:`genlab.utils.randn_like_per_sample`), so under a generator
    results do not depend on the batch size; ``m`` itself takes no generator and should be deterministic for
    that to hold. ``σ`` is a scalar here (the paper allows a matrix ``σ``). Gradients flow through ``m`` if it
    has parameters; wrap it in ``torch.no_grad`` yourself if it is a frozen network.

    Accepted batches: a tensor ``x1`` or a tuple/list ``(x1, label, ...)`` (extra elements ignored).

    Args:
        m: Map ``x1 ↦ m(x1)`` returning a tensor of ``x1``'s shape.
        sigma: Noise scale ``σ >= 0``; ``σ = 0`` gives ``x0 = m(x1)`` exactly (no noise drawn).
        cond: Return ``m(x1)`` as the conditioning input ``cond``.
        coupled: ``False``: the uncoupled baseline, ``x0 = ζ`` (independent Gaussian noise) with the same
            ``cond = m(x1)`` (needs ``cond=True``; ``sigma`` is then unused).
    """

    def __init__(
        self, m: Callable[[Tensor], Tensor], sigma: float, *, cond: bool = True, coupled: bool = True
    ) -> None:
        if not callable(m):
            raise TypeError(f"m must be a callable x1 -> m(x1); got {type(m).__name__}")
        if not isinstance(cond, bool):
            raise TypeError(f"cond must be a bool; got {type(cond).__name__}")
        if not isinstance(coupled, bool):
            raise TypeError(f"coupled must be a bool; got {type(coupled).__name__}")
        if not coupled and not cond:
            raise ValueError(
                "coupled=False (the uncoupled baseline) starts from pure noise, so the network needs the "
                "observation as input: pass cond=True"
            )
        self.m = m
        self.sigma = _check_sigma(sigma)
        self.cond = cond
        self.coupled = coupled

    def __repr__(self) -> str:
        extra = "" if self.coupled else ", coupled=False"
        return f"{type(self).__name__}(m={self.m!r}, sigma={self.sigma}, cond={self.cond}{extra})"

    def _apply_m(self, x1: Tensor) -> Tensor:
        m_x1 = self.m(x1)
        if not isinstance(m_x1, Tensor) or tuple(m_x1.shape) != tuple(x1.shape):
            got = tuple(m_x1.shape) if isinstance(m_x1, Tensor) else type(m_x1).__name__
            raise ValueError(
                f"{type(self).__name__}: m(x1) must be a tensor of x1's shape {tuple(x1.shape)}; got {got}"
            )
        return m_x1

    def source(
        self, observation: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Build the starting point of Algorithm 2 from an observed ``m(x1)`` (no clean ``x1`` needed).

        Args:
            observation: The corrupted observation ``m(x1)``, shape ``(B, ...)``.
            generator: Optional random generator for ``ζ``.

        Returns:
            ``(x0, cond)`` with ``x0 = observation + σζ`` (``coupled=False``: ``x0 = ζ``) and
            ``cond = observation`` (``None`` if ``cond=False``).
        """
        if not isinstance(observation, Tensor) or not torch.is_floating_point(observation):
            raise TypeError(f"{type(self).__name__}.source: observation must be a floating-point tensor")
        if not self.coupled:
            return randn_like_per_sample(observation, generator=generator), observation
        x0 = (
            observation.clone()
            if self.sigma == 0
            else observation + self.sigma * randn_like_per_sample(observation, generator=generator)
        )
        return x0, (observation if self.cond else None)

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Draw ``x0 = m(x1) + σζ`` for each target in the batch (Algorithm 1, line 4).

        Args:
            batch: A tensor ``x1`` or a tuple/list ``(x1, label, ...)``.
            generator: Optional random generator for ``ζ``.

        Returns:
            ``CouplingSample(x0, x1, cond=m(x1) if cond else None)``.

        Raises:
            ValueError: If ``m(x1)`` does not have ``x1``'s shape.
        """
        x1 = unpack_target(batch, coupling=type(self).__name__)
        m_x1 = self._apply_m(x1)
        x0, cond = self.source(m_x1, generator=generator)
        return CouplingSample(x0=x0, x1=x1, cond=cond)


@dataclass(frozen=True)
class DownsampleMap:
    """``m(x) = U(D(x))``: average-pool by ``factor`` then up-sample back (see :func:`downsample_map`).

    Attributes:
        factor: Integer down-sampling factor ``k`` (``H`` and ``W`` must be multiples of it).
        mode: Up-sampling ``U``: ``"nearest"`` (each low-res pixel repeated on a ``k×k`` block) or
            ``"bilinear"`` (``align_corners=False``).
    """

    factor: int
    mode: Literal["nearest", "bilinear"] = "nearest"

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 1:
            raise ValueError(f"factor must be an int >= 1; got {self.factor!r}")
        if self.mode not in ("nearest", "bilinear"):
            raise ValueError(f"mode must be 'nearest' or 'bilinear'; got {self.mode!r}")

    def down(self, x: Tensor) -> Tensor:
        """``D``: average over non-overlapping ``factor × factor`` blocks, ``(B,C,H,W) → (B,C,H/k,W/k)``."""
        _check_image(x, name="x", who="downsample_map")
        k = self.factor
        if x.shape[-2] % k or x.shape[-1] % k:
            raise ValueError(
                f"downsample_map: height and width {tuple(x.shape[-2:])} must be multiples of factor={k}; "
                "crop or pad the images, or pick a factor that divides them"
            )
        return F.avg_pool2d(x, kernel_size=k, stride=k) if k > 1 else x

    def up(self, x_low: Tensor) -> Tensor:
        """``U``: up-sample by ``factor`` with :attr:`mode`."""
        _check_image(x_low, name="x_low", who="downsample_map")
        if self.factor == 1:
            return x_low
        if self.mode == "nearest":
            return F.interpolate(x_low, scale_factor=self.factor, mode="nearest")
        return F.interpolate(x_low, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def __call__(self, x: Tensor) -> Tensor:
        """``U(D(x))``, same shape as ``x``."""
        return self.up(self.down(x))


def downsample_map(factor: int, *, mode: Literal["nearest", "bilinear"] = "nearest") -> DownsampleMap:
    """The super-resolution corruption ``m(x1) = U(D(x1))`` of Albergo et al. (ICML 2024, §4.2).

    ``D`` averages ``factor × factor`` blocks (area down-sampling), ``U`` up-samples back to full size, so
    ``m(x1)`` lives in the high-resolution space and ``x0 = m(x1) + σζ`` starts each pixel near its target. The
    paper does not name its ``D``/``U``; average pooling and nearest/bilinear up-sampling are our choice.

    Args:
        factor: Down-sampling factor (``H``, ``W`` must be multiples of it), e.g. 4 for 64→256.
        mode: ``"nearest"`` or ``"bilinear"`` up-sampling.

    Returns:
        A picklable callable :class:`DownsampleMap`.
    """
    return DownsampleMap(factor=factor, mode=mode)


class SuperResolution(DataDependent):
    """Super-resolution coupling ``x0 = U(D(x1)) + σζ`` with ``cond = U(D(x1))`` (Albergo et al., ICML 2024, §4.2).

    :class:`DataDependent` with ``m =`` :func:`downsample_map` ``(factor, mode=mode)``; a name that configs can
    build without passing a callable. The paper requires ``σ > 0`` so the base density has full support; ``σ``
    is not reported there, so there is no paper default here.

    Accepted batches: a tensor ``x1`` of shape ``(B, C, H, W)`` or ``(x1, label, ...)``.

    Args:
        factor: Down-sampling factor.
        sigma: Noise scale ``σ >= 0``.
        mode: ``"nearest"`` or ``"bilinear"`` up-sampling.
        cond: Return ``U(D(x1))`` as ``cond``.
        coupled: ``False``: the uncoupled baseline (``x0 = ζ``, same ``cond``).
    """

    def __init__(
        self,
        factor: int,
        sigma: float,
        *,
        mode: Literal["nearest", "bilinear"] = "nearest",
        cond: bool = True,
        coupled: bool = True,
    ) -> None:
        super().__init__(downsample_map(factor, mode=mode), sigma, cond=cond, coupled=coupled)


def _tile_grid(tiles: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(tiles, tuple) and len(tiles) == 2 and all(isinstance(v, int) and v >= 1 for v in tiles):
        return tiles
    if isinstance(tiles, int) and not isinstance(tiles, bool) and tiles >= 1:
        side = math.isqrt(tiles)
        if side * side == tiles:
            return side, side
        raise ValueError(
            f"tiles={tiles} is not a perfect square; pass a (rows, cols) tuple instead, e.g. (4, 8)"
        )
    raise ValueError(
        f"tiles must be a positive perfect-square int (64 = 8×8 tiles) or (rows, cols); got {tiles!r}"
    )


def _expand_tiles(tile_values: Tensor, height: int, width: int) -> Tensor:
    """``(B, rows, cols)`` tile values → ``(B, 1, H, W)``; pixel ``(i, j)`` lies in tile ``(⌊i·rows/H⌋, ⌊j·cols/W⌋)``."""
    rows, cols = tile_values.shape[-2:]
    if height < rows or width < cols:
        raise ValueError(
            f"a {rows}×{cols} tile grid needs images of at least that size; got {height}×{width}"
        )
    device = tile_values.device
    row_idx = torch.arange(height, device=device) * rows // height
    col_idx = torch.arange(width, device=device) * cols // width
    return tile_values[:, row_idx][:, :, col_idx].unsqueeze(1)


def _check_p(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p (probability that a tile is masked) must lie in [0, 1]; got {p!r}")
    return float(p)


def tile_mask(
    batch: int,
    height: int,
    width: int,
    *,
    tiles: int | tuple[int, int] = 64,
    p: float = 0.3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Random tile masks ``ξ`` of Albergo et al. (ICML 2024, §4.1): the image is cut into ``tiles`` tiles and
    each tile is masked (``ξ = 0``, to be generated) independently with probability ``p``; ``ξ = 1`` elsewhere.

    Tiles split the image into a ``rows × cols`` grid (64 → 8×8); when ``H`` is not a multiple of ``rows``,
    pixel row ``i`` belongs to tile row ``⌊i·rows/H⌋`` (likewise for columns). Masks are drawn one sample at a
    time under a generator, so they do not depend on the batch size.

    Args:
        batch: Number of masks ``B``.
        height: Image height ``H``.
        width: Image width ``W``.
        tiles: Number of tiles (a perfect square) or ``(rows, cols)``; paper: 64.
        p: Probability that a tile is masked; paper: 0.3.
        generator: Optional random generator.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        ``ξ`` of shape ``(B, 1, H, W)`` with values in ``{0, 1}`` (one channel: the mask is shared by channels).
    """
    rows, cols = _tile_grid(tiles)
    p = _check_p(p)
    if generator is None:
        u = torch.rand((batch, rows, cols), device=device)
    else:
        draws = [torch.rand((rows, cols), generator=generator, device=generator.device) for _ in range(batch)]
        u = torch.stack(draws) if draws else torch.empty((0, rows, cols))
    keep = (u >= p).to(device=device, dtype=dtype)
    return _expand_tiles(keep, height, width)


def mask_velocity(velocity: Tensor, mask: Tensor) -> Tensor:
    """Zero a velocity on observed pixels: ``(1 − ξ)∘v`` (Albergo et al., ICML 2024, §4.1).

    With ``x0 = ξ∘x1 + (1−ξ)∘ζ`` the observed pixels of ``I_t`` equal those of ``x1`` for every ``t``, so the
    exact velocity vanishes there; the paper builds this into the model by masking its output. Apply it to the
    network output (during training and sampling) so the loss only fits the pixels to be generated.

    Args:
        velocity: Velocity (or any field) of shape ``(B, C, H, W)``.
        mask: ``ξ`` from :class:`MaskedCoupling`, broadcastable to ``velocity`` (1 = observed).

    Returns:
        ``(1 − mask) * velocity``.
    """
    return (1 - mask.to(velocity.dtype)) * velocity


class MaskedCoupling(Coupling):
    r"""Inpainting coupling ``x0 = ξ∘x1 + (1−ξ)∘ζ`` with random tile masks (Albergo et al., ICML 2024, §4.1).

    Per sample, ``ξ`` is a tile mask (:func:`tile_mask`; paper: 64 tiles, each masked with probability
    ``p = 0.3``) shared by all channels, and ``ζ ~ N(0, I)`` fills the masked pixels (separate noise per
    channel); it is computed as ``where(ξ = 1, x1, ζ)``, the same as the product form for ``ξ ∈ {0, 1}``, so
    observed pixels of ``x0`` are bit-for-bit those of ``x1``. Along ``I_t = α_t x0 + β_t x1`` those pixels never
    move and the velocity is zero there: the mask is returned as ``CouplingSample.mask`` so that the training
    loss and the sampler can apply :func:`mask_velocity` to the network output, as in the paper.

    Conditioning (``cond``): the paper appends only the mask to the network input (the observed pixels are
    already in ``x_t``); ``"image_and_mask"`` (default) appends the masked image ``ξ∘x1`` and the mask, i.e.
    ``C + 1`` channels; ``"mask"`` appends the 1-channel mask only; ``"none"`` returns ``cond=None``.

    ``ξ`` and ``ζ`` are drawn sample by sample (mask then noise), so under a generator results do not depend
    on the batch size. The paper's text writes ``α_t = t, β_t = 1 − t`` for this experiment, which contradicts
    its own boundary conditions; genlab keeps ``x0`` at ``t = 0``.

    Accepted batches: a tensor ``x1`` of shape ``(B, C, H, W)`` or ``(x1, label, ...)``.

    Args:
        tiles: Number of tiles (perfect square) or ``(rows, cols)``; paper: 64.
        p: Probability that a tile is masked; paper: 0.3.
        cond: ``"image_and_mask"``, ``"mask"`` or ``"none"``.
        coupled: ``False``: the uncoupled baseline: ``x0 = ζ`` on every pixel, the same ``cond`` (must not be
            ``"none"``), and no ``mask`` in the sample (every pixel moves, so the loss counts every pixel and the
            velocity is not masked).
    """

    def __init__(
        self,
        tiles: int | tuple[int, int] = 64,
        p: float = 0.3,
        *,
        cond: Literal["image_and_mask", "mask", "none"] = "image_and_mask",
        coupled: bool = True,
    ) -> None:
        self.tiles = _tile_grid(tiles)
        self.p = _check_p(p)
        if cond not in ("image_and_mask", "mask", "none"):
            raise ValueError(f"cond must be 'image_and_mask', 'mask' or 'none'; got {cond!r}")
        if not isinstance(coupled, bool):
            raise TypeError(f"coupled must be a bool; got {type(coupled).__name__}")
        if not coupled and cond != "image_and_mask":
            raise ValueError(
                "coupled=False (the uncoupled baseline) starts from pure noise, so the network needs the observed "
                "image and the mask as input: pass cond='image_and_mask'"
            )
        self.cond = cond
        self.coupled = coupled

    def __repr__(self) -> str:
        extra = "" if self.coupled else ", coupled=False"
        return f"MaskedCoupling(tiles={self.tiles}, p={self.p}, cond={self.cond!r}{extra})"

    def _cond(self, x_obs: Tensor, mask: Tensor) -> Tensor | None:
        if self.cond == "none":
            return None
        if self.cond == "mask":
            return mask
        return torch.cat([mask * x_obs, mask], dim=1)

    def source(
        self, observation: Tensor, mask: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Starting point for sampling (Algorithm 2) from an observed image and its mask.

        Args:
            observation: Image whose pixels with ``mask == 1`` are observed, shape ``(B, C, H, W)``; the other
                pixels are ignored.
            mask: ``ξ`` of shape ``(B, 1, H, W)`` or ``(B, C, H, W)``, 1 on observed pixels.
            generator: Optional random generator for ``ζ``.

        Returns:
            ``(x0, cond)`` with ``x0 = ξ∘observation + (1−ξ)∘ζ`` and ``cond`` as configured.
        """
        _check_image(observation, name="observation", who="MaskedCoupling.source")
        _check_image(mask, name="mask", who="MaskedCoupling.source")
        mask = mask.to(device=observation.device, dtype=observation.dtype)
        zeta = randn_like_per_sample(observation, generator=generator)
        x0 = zeta if not self.coupled else torch.where(mask.bool(), observation, zeta)
        return x0, self._cond(observation, mask)

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        """Draw a tile mask and the masked source for each target.

        Args:
            batch: A tensor ``x1`` of shape ``(B, C, H, W)`` or a tuple/list ``(x1, label, ...)``.
            generator: Optional random generator for ``ξ`` and ``ζ``.

        Returns:
            ``CouplingSample(x0, x1, cond, mask=ξ)`` with ``ξ`` of shape ``(B, 1, H, W)``.
        """
        x1 = unpack_target(batch, coupling="MaskedCoupling")
        _check_image(x1, name="x1", who="MaskedCoupling")
        rows, cols = self.tiles
        if generator is None:
            u = torch.rand((x1.shape[0], rows, cols), device=x1.device)
            zeta = torch.randn_like(x1)
        else:
            gdev = generator.device
            us, zs = [], []
            for _ in range(x1.shape[0]):  # mask then noise, sample by sample: batch-size invariant
                us.append(torch.rand((rows, cols), generator=generator, device=gdev))
                zs.append(torch.randn(x1.shape[1:], generator=generator, device=gdev, dtype=x1.dtype))
            u, zeta = torch.stack(us).to(x1.device), torch.stack(zs).to(x1.device)
        mask = _expand_tiles((u >= self.p).to(x1.dtype), x1.shape[-2], x1.shape[-1])
        if not self.coupled:
            return CouplingSample(x0=zeta, x1=x1, cond=self._cond(x1, mask))
        x0 = torch.where(mask.bool(), x1, zeta)
        return CouplingSample(x0=x0, x1=x1, cond=self._cond(x1, mask), mask=mask)
