"""Hierarchical VAEs: a small VDVAE-style network and an exact linear-Gaussian one (the analytic test rig).

**HVAE** (Child, "Very Deep VAEs Generalize Autoregressive Models and Can Outperform Them on Images", ICLR 2021;
architecture in ``reference/inverse.md`` §1.8). A bottom-up encoder of residual bottleneck blocks stores its
activations at every resolution; a top-down decoder starts from a learned constant at the coarsest resolution and
runs one :class:`DecBlock` per latent group ``z_l`` (``zdim`` channels at the group's resolution, upsampling by 2
between resolutions). Each block computes the prior ``p(z_l | z_<l) = N(pm, pσ²)`` and a feature ``xpp`` from the
state ``h`` (last layer zero-initialised, as VDVAE), the posterior ``q(z_l | x, z_<l) = N(qm, qσ²)`` from
``[h, act]``, and continues with ``h ← res(h + xpp + proj(z_l))``. The ELBO is
``E_q log p(x | z) − Σ_l KL(q_l ‖ p_l)`` with analytic per-group KLs.

Likelihood (said plainly): a **discretised logistic** with one component per pixel (PixelCNN++, Salimans et al.
2017, eq. 2) over ``n_bins`` evenly spaced levels of ``data_range`` (17 for scikit-learn digits, 256 for 8-bit
images), the edge bins extended to ±∞ — not VDVAE's 10-component mixture, which is overkill at 8×8.
Bits/dim = ``−ELBO / (D ln 2)`` with ``D`` = pixels × channels.

Deviations from VDVAE at CPU scale: widths, depths and group counts are tiny (config), kernels are 3×3 above
2×2 resolution and 1×1 below (as VDVAE), pooling is average pooling, upsampling nearest.

**LinearGaussianHVAE**: ``z_1 ~ N(0, I)``, ``z_2 | z_1 ~ N(B z_1, diag(s²))``, ``x | z ~ N(W_1 z_1 + W_2 z_2 + b,
γ² I)`` with an *exact* encoder (``q = p(z | x)``, closed form). With mutually orthogonal columns of ``W_1, W_2``
and diagonal ``B`` every posterior covariance is diagonal, so the per-coordinate Gaussian stats of the HVAE
protocol are exact; it is the PPCA-like rig of the PnP-HVAE tests.

Both implement the protocol that :class:`genlab.inverse.HVAEPrior` needs: ``n_levels``, ``event_shape``,
``bottom_up(x)``, ``top_down(acts, select)`` and ``decode(zs)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.utils import NoiseStream, RandomSource, randn_per_sample

__all__ = [
    "HVAE",
    "DecBlock",
    "ELBOOutput",
    "HVAESample",
    "LevelStats",
    "LinearGaussianHVAE",
    "Select",
    "TopDown",
    "discretized_logistic_logp",
    "discretized_logistic_mean",
    "gaussian_kl",
    "level_temperatures",
]


@dataclass(frozen=True)
class LevelStats:
    """Gaussian statistics of one latent group in the top-down pass.

    Attributes:
        p_mean: Prior mean ``pm`` of ``p(z_l | z_<l)``.
        p_logstd: Prior log-std ``log pσ``.
        q_mean: Posterior mean ``qm`` of ``q(z_l | x, z_<l)`` (``None`` without encoder activations).
        q_logstd: Posterior log-std (``None`` without encoder activations).
    """

    p_mean: Tensor
    p_logstd: Tensor
    q_mean: Tensor | None = None
    q_logstd: Tensor | None = None


#: ``select(level, stats) -> z_level``: how the top-down pass chooses each latent group.
Select = Callable[[int, LevelStats], Tensor]


@dataclass
class TopDown:
    """Result of a top-down pass.

    Attributes:
        zs: The chosen latent groups, top (coarsest) first.
        stats: Their :class:`LevelStats`.
        x_mean: Decoder mean ``μ_θ(z) = E[x | z]`` of the output distribution (for the HVAE: the mean of the
            discretised logistic, inside the data range), shape ``(B, *event_shape)``.
        x_logscale: Log-scale of the output distribution (same shape).
        x_loc: Location of the output distribution (the logistic's centre, which the likelihood uses; it may lie
            outside the data range where the edge bins absorb the mass). ``None`` means ``x_mean``.
    """

    zs: list[Tensor]
    stats: list[LevelStats]
    x_mean: Tensor
    x_logscale: Tensor
    x_loc: Tensor | None = None


@dataclass
class ELBOOutput:
    """Per-sample ELBO terms (nats) of a batch.

    Attributes:
        nll: ``−E_q log p(x | z)`` (one-sample estimate), shape ``(B,)``.
        kl: Per-group KLs ``KL(q_l ‖ p_l)``, shape ``(B, n_levels)``.
        elbo: ``−nll − Σ kl``, shape ``(B,)``.
        bpd: Bits per dimension ``−elbo / (D ln 2)``, shape ``(B,)``.
        x_mean: Decoder mean ``E[x | z]`` of the reconstruction.
    """

    nll: Tensor
    kl: Tensor
    elbo: Tensor
    bpd: Tensor
    x_mean: Tensor


@dataclass
class HVAESample:
    """Samples of :meth:`HVAE.sample`.

    Attributes:
        x: Decoder means ``μ_θ(z) = E[x | z]`` (inside the data range), ``(n, *event_shape)``.
        zs: The latent groups.
    """

    x: Tensor
    zs: list[Tensor]


def gaussian_kl(q_mean: Tensor, q_logstd: Tensor, p_mean: Tensor, p_logstd: Tensor) -> Tensor:
    """Elementwise ``KL(N(qm, qσ²) ‖ N(pm, pσ²))``."""
    return (p_logstd - q_logstd + 0.5 * (torch.exp(2 * (q_logstd - p_logstd))
                                         + ((q_mean - p_mean) * torch.exp(-p_logstd)) ** 2) - 0.5)


def discretized_logistic_logp(
    x: Tensor, mean: Tensor, logscale: Tensor, *, n_bins: int, low: float = -1.0, high: float = 1.0
) -> Tensor:
    """Elementwise log-probability of ``x`` under a logistic discretised to ``n_bins`` levels of ``[low, high]``.

    PixelCNN++ (Salimans et al. 2017, eq. 2): the mass of the bin of width ``Δ = (high − low)/(n_bins − 1)``
    around ``x``; the lowest and highest bins extend to ∓∞ so the masses sum to one. Where the bin mass underflows
    the density at the centre times ``Δ`` is used.

    Args:
        x: Data on the grid (shape of ``mean``).
        mean: Logistic location.
        logscale: Logistic log-scale.
        n_bins: Number of levels (≥ 2).
        low: Lowest level.
        high: Highest level.

    Returns:
        Log-probabilities, shape of ``x``.
    """
    half = 0.5 * (high - low) / (n_bins - 1)
    centered = x - mean
    inv_s = torch.exp(-logscale)
    plus_in = inv_s * (centered + half)
    min_in = inv_s * (centered - half)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - logscale - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)), log_pdf_mid + math.log(2 * half))
    return torch.where(x < low + half, log_cdf_plus, torch.where(x > high - half, log_one_minus_cdf_min, inner))


def discretized_logistic_mean(mean: Tensor, logscale: Tensor, *, n_bins: int, low: float = -1.0,
                              high: float = 1.0) -> Tensor:
    """``E[x]`` under :func:`discretized_logistic_logp`: ``Σ_k level_k · P(bin k)`` (inside ``[low, high]``)."""
    levels = torch.linspace(low, high, n_bins, device=mean.device, dtype=mean.dtype)
    half = 0.5 * (high - low) / (n_bins - 1)
    inv_s = torch.exp(-logscale)
    edges = levels[:-1] + half  # n_bins − 1 inner edges
    cdf = torch.sigmoid((edges.view(-1, *([1] * mean.ndim)) - mean) * inv_s)  # (n_bins − 1, *shape)
    zeros, ones = torch.zeros_like(cdf[:1]), torch.ones_like(cdf[:1])
    probs = torch.diff(torch.cat([zeros, cdf, ones], dim=0), dim=0)
    return (probs * levels.view(-1, *([1] * mean.ndim))).sum(0)


def level_temperatures(temperature: float | Sequence[float] | Tensor, n_levels: int, *,
                       name: str = "temperature") -> list[float]:
    """Per-level temperatures, top (coarsest) group first.

    ``temperature`` is one float (every level), a pair ``(t_top, t_bottom)`` expanded linearly as in PnP-HVAE's
    configs (``T(l) = t_top + (t_bottom − t_top)·l/L``, ``l = 0 … L−1``; ``reference/inverse.md`` §1.8), or a list
    of ``n_levels`` values.

    Raises:
        ValueError: for a non-finite or non-positive temperature, or a list of the wrong length.
    """
    if isinstance(temperature, Tensor):
        temperature = temperature.tolist()
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        temps = [float(temperature)] * n_levels
    elif isinstance(temperature, Sequence) and not isinstance(temperature, str):
        vals = [float(t) for t in temperature]
        if len(vals) == 2 and n_levels != 2:
            temps = [vals[0] + (vals[1] - vals[0]) * level / n_levels for level in range(n_levels)]
        elif len(vals) == n_levels:
            temps = vals
        else:
            raise ValueError(f"{name} must be one float, a pair (t_top, t_bottom) or {n_levels} values (one per "
                             f"level); got {len(vals)} values")
    else:
        raise TypeError(f"{name} must be a float or a sequence of floats; got {type(temperature).__name__}")
    bad = [t for t in temps if not (math.isfinite(t) and t > 0)]
    if bad:
        raise ValueError(f"{name} values must be finite and > 0 (a temperature scales the prior std); got {bad}")
    return temps


def _streams(generator: RandomSource, n: int) -> RandomSource:
    """One noise stream per sample, so sample ``i`` depends only on (seed, i) across the several draws of a pass."""
    return NoiseStream(n, generator) if isinstance(generator, torch.Generator) else generator


# ----------------------------------------------------------------------------------------------- blocks
def _conv(c_in: int, c_out: int, res: int, *, zero: bool = False) -> nn.Conv2d:
    k = 3 if res > 2 else 1
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    if zero:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return conv


class ResBlock(nn.Module):
    """VDVAE's bottleneck block: GELU → conv ``c_in → m`` → GELU → conv → GELU → conv → GELU → conv ``m → c_out``
    (1×1 at the ends, 3×3 inside at resolutions above 2), with a residual connection when ``c_in == c_out``.

    Args:
        c_in: Input channels.
        middle: Bottleneck channels.
        c_out: Output channels.
        res: Spatial resolution (kernel size choice).
        residual: Add the input.
        zero_last: Zero-initialise the last convolution (VDVAE's prior head).
        last_scale: Scale the last convolution's initial weights (VDVAE: ``1/√n_blocks``).
    """

    def __init__(self, c_in: int, middle: int, c_out: int, res: int, *, residual: bool = True,
                 zero_last: bool = False, last_scale: float = 1.0) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c_in, middle, 1)
        self.c2 = _conv(middle, middle, res)
        self.c3 = _conv(middle, middle, res)
        self.c4 = nn.Conv2d(middle, c_out, 1)
        if zero_last:
            nn.init.zeros_(self.c4.weight)
            nn.init.zeros_(self.c4.bias)
        else:
            with torch.no_grad():
                self.c4.weight.mul_(last_scale)
        self.residual = residual and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        h = self.c4(F.gelu(self.c3(F.gelu(self.c2(F.gelu(self.c1(F.gelu(x))))))))
        return x + h if self.residual else h


class DecBlock(nn.Module):
    """One latent group of the top-down decoder (VDVAE ``DecBlock``).

    Args:
        width: Channels of the state ``h``.
        zdim: Channels of ``z_l``.
        res: Resolution of the group.
        n_groups: Total number of groups (initial scale of the residual branches).
    """

    def __init__(self, width: int, zdim: int, res: int, n_groups: int) -> None:
        super().__init__()
        mid = max(width // 4, 4)
        self.zdim = zdim
        self.res = res
        self.enc = ResBlock(2 * width, mid, 2 * zdim, res, residual=False)
        self.prior = ResBlock(width, mid, 2 * zdim + width, res, residual=False, zero_last=True)
        self.z_proj = nn.Conv2d(zdim, width, 1)
        with torch.no_grad():
            self.z_proj.weight.mul_(math.sqrt(1.0 / n_groups))
        self.resnet = ResBlock(width, mid, width, res, last_scale=math.sqrt(1.0 / n_groups))

    def stats(self, h: Tensor, act: Tensor | None) -> tuple[LevelStats, Tensor]:
        """Prior (and posterior, when ``act`` is given) statistics of this group and the prior feature ``xpp``."""
        p = self.prior(h)
        pm, plogstd, xpp = p[:, : self.zdim], p[:, self.zdim: 2 * self.zdim], p[:, 2 * self.zdim:]
        if act is None:
            return LevelStats(pm, plogstd), xpp
        q = self.enc(torch.cat([h, act], dim=1))
        return LevelStats(pm, plogstd, q[:, : self.zdim], q[:, self.zdim:]), xpp

    def forward(self, h: Tensor, act: Tensor | None, select: Select, level: int) -> tuple[Tensor, Tensor, LevelStats]:
        """One group: statistics, ``z_l = select(level, stats)``, state update. Returns ``(h, z_l, stats)``."""
        st, xpp = self.stats(h, act)
        z = select(level, st)
        h = self.resnet(h + xpp + self.z_proj(z))
        return h, z, st


# ----------------------------------------------------------------------------------------------- HVAE
class HVAE(nn.Module):
    """A small VDVAE-style hierarchical VAE for images (see the module docstring).

    Args:
        in_channels: Image channels.
        image_size: Image side (a power of two times the coarsest group resolution).
        width: Channels of the encoder and decoder states.
        zdim: Channels of every latent group.
        groups: Resolution of each latent group, top (coarsest) first, non-decreasing powers of two
            ``≤ image_size`` (e.g. ``(1, 2, 4, 4, 8, 8)``: 6 groups at 1×1 … 8×8).
        enc_blocks: Encoder residual blocks per resolution.
        n_bins: Levels of the discretised likelihood (17 for scikit-learn digits, 256 for 8-bit images).
        data_range: ``(low, high)`` of the data.
        min_logscale: Floor of the output log-scale (PixelCNN++ uses −7).

    Example:
        >>> net = HVAE(image_size=8, groups=(1, 2, 4, 8))
        >>> net.elbo(torch.zeros(2, 1, 8, 8)).bpd.shape
        torch.Size([2])
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        image_size: int = 8,
        width: int = 32,
        zdim: int = 4,
        groups: Sequence[int] = (1, 2, 4, 4, 8, 8),
        enc_blocks: int = 1,
        n_bins: int = 17,
        data_range: Sequence[float] = (-1.0, 1.0),
        min_logscale: float = -7.0,
    ) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("image_size", image_size), ("width", width),
                        ("zdim", zdim), ("enc_blocks", enc_blocks)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"HVAE: {name} must be a positive int; got {v!r}")
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(f"HVAE: n_bins must be an int >= 2 (levels of the data); got {n_bins!r}")
        groups = [int(g) for g in groups]
        if not groups:
            raise ValueError("HVAE: groups must list at least one latent-group resolution, e.g. [1, 2, 4, 8]")
        for g in groups:
            if g < 1 or g > image_size or image_size % g or (image_size // g) & (image_size // g - 1):
                raise ValueError(f"HVAE: group resolution {g} must divide image_size={image_size} by a power of "
                                 f"two; got groups={groups}")
        if any(b < a for a, b in itertools.pairwise(groups)):
            raise ValueError(f"HVAE: groups must be non-decreasing (coarsest first); got {groups}")
        lo, hi = (float(v) for v in data_range)
        if not lo < hi:
            raise ValueError(f"HVAE: data_range must be (low, high) with low < high; got {data_range!r}")
        self.config: dict[str, Any] = {
            "in_channels": in_channels, "image_size": image_size, "width": width, "zdim": zdim,
            "groups": groups, "enc_blocks": enc_blocks, "n_bins": n_bins, "data_range": [lo, hi],
            "min_logscale": float(min_logscale),
        }
        self.in_channels, self.image_size, self.zdim = in_channels, image_size, zdim
        self.groups, self.n_bins, self.low, self.high = groups, n_bins, lo, hi
        self.min_logscale = float(min_logscale)
        self.resolutions = sorted(set(groups), reverse=True)  # bottom-up order
        mid = max(width // 4, 4)
        self.enc_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.enc_blocks = nn.ModuleDict()
        res = image_size
        while True:
            self.enc_blocks[str(res)] = nn.Sequential(*[ResBlock(width, mid, width, res) for _ in range(enc_blocks)])
            if res <= min(groups):
                break
            res //= 2
        self.h_top = nn.Parameter(torch.zeros(1, width, groups[0], groups[0]))
        self.dec = nn.ModuleList([DecBlock(width, zdim, g, len(groups)) for g in groups])
        self.out_res = ResBlock(width, mid, width, image_size)
        self.out = nn.Conv2d(width, 2 * in_channels, 1)

    # ---------------------------------------------------------------- protocol
    @property
    def n_levels(self) -> int:
        """Number of latent groups."""
        return len(self.groups)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Per-sample image shape ``(C, H, W)``."""
        return (self.in_channels, self.image_size, self.image_size)

    def check_input(self, x: Tensor, *, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is a batch of images of :attr:`event_shape`."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"HVAE: {name} must be a floating-point tensor; got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.event_shape or x.ndim != 4:
            raise ValueError(f"HVAE: {name} must have shape (B, {', '.join(map(str, self.event_shape))}); got "
                             f"{tuple(x.shape)}")

    def bottom_up(self, x: Tensor) -> dict[int, Tensor]:
        """Encoder activations at every resolution (keyed by the side length)."""
        self.check_input(x)
        h = self.enc_in(x)
        acts: dict[int, Tensor] = {}
        res = self.image_size
        while True:
            h = self.enc_blocks[str(res)](h)
            acts[res] = h
            if res <= min(self.groups):
                break
            h = F.avg_pool2d(h, 2)
            res //= 2
        return acts

    def top_down(self, acts: dict[int, Tensor] | None, select: Select, *, n: int | None = None) -> TopDown:
        """Run the decoder; at group ``l`` call ``select(l, stats)`` to choose ``z_l``.

        Args:
            acts: Encoder activations (:meth:`bottom_up`); ``None`` runs the prior only (then ``n`` is required
                and ``stats.q_*`` are ``None``).
            select: Chooses each group from its statistics.
            n: Batch size when ``acts`` is ``None``.

        Returns:
            :class:`TopDown`.
        """
        if acts is None:
            if n is None:
                raise ValueError("HVAE.top_down: pass n= (the batch size) when running without activations")
            batch = n
        else:
            batch = next(iter(acts.values())).shape[0]
        h = self.h_top.expand(batch, -1, -1, -1)
        zs, stats = [], []
        res = self.groups[0]
        for level, block in enumerate(self.dec):
            while res < block.res:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
                res *= 2
            h, z, st = block(h, None if acts is None else acts[res], select, level)
            zs.append(z)
            stats.append(st)
        while res < self.image_size:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            res *= 2
        out = self.out(self.out_res(h))
        loc, logscale = out[:, : self.in_channels], out[:, self.in_channels:].clamp_min(self.min_logscale)
        mean = discretized_logistic_mean(loc, logscale, n_bins=self.n_bins, low=self.low, high=self.high)
        return TopDown(zs, stats, mean, logscale, loc)

    def decode(self, zs: Sequence[Tensor]) -> TopDown:
        """The decoder with every group given (``zs`` top first)."""
        if len(zs) != self.n_levels:
            raise ValueError(f"HVAE.decode: zs must hold {self.n_levels} groups; got {len(zs)}")
        return self.top_down(None, lambda level, st: zs[level], n=zs[0].shape[0])

    # ---------------------------------------------------------------- likelihood
    def elbo(self, x: Tensor, *, generator: RandomSource = None) -> ELBOOutput:
        """One-sample ELBO of ``x`` (reparameterised ``z_l ~ q``; per-sample noise from ``generator``)."""
        acts = self.bottom_up(x)
        generator = _streams(generator, x.shape[0])

        def select(level: int, st: LevelStats) -> Tensor:
            assert st.q_mean is not None and st.q_logstd is not None
            eps = randn_per_sample(st.q_mean.shape, generator=generator, device=x.device, dtype=x.dtype)
            return st.q_mean + torch.exp(st.q_logstd) * eps

        td = self.top_down(acts, select)
        kl = torch.stack([gaussian_kl(st.q_mean, st.q_logstd, st.p_mean, st.p_logstd).flatten(1).sum(1)
                          for st in td.stats if st.q_mean is not None and st.q_logstd is not None], dim=1)
        logp = discretized_logistic_logp(x, td.x_loc, td.x_logscale, n_bins=self.n_bins, low=self.low,
                                         high=self.high)
        nll = -logp.flatten(1).sum(1)
        elbo = -nll - kl.sum(1)
        dims = x[0].numel()
        return ELBOOutput(nll=nll, kl=kl, elbo=elbo, bpd=-elbo / (dims * math.log(2.0)), x_mean=td.x_mean)

    def forward(self, x: Tensor, *, generator: RandomSource = None) -> ELBOOutput:
        """Same as :meth:`elbo`."""
        return self.elbo(x, generator=generator)

    def log_likelihood_is(self, x: Tensor, *, k: int = 64, generator: RandomSource = None) -> Tensor:
        """Importance-sampled bound ``log (1/K) Σ_k p(x, z_k)/q(z_k | x)`` (Burda et al. 2016) per sample.

        It is ≥ the ELBO in expectation and tends to ``log p(x)`` as ``K → ∞``.

        Args:
            x: Images.
            k: Importance samples per image.
            generator: Noise source.

        Returns:
            ``(B,)`` log-likelihood bound in nats.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int (importance samples); got {k!r}")
        acts = self.bottom_up(x)
        generator = _streams(generator, x.shape[0])
        ws = []
        for _ in range(k):
            acc: list[Tensor] = []

            def select(level: int, st: LevelStats, acc: list[Tensor] = acc) -> Tensor:
                assert st.q_mean is not None and st.q_logstd is not None
                eps = randn_per_sample(st.q_mean.shape, generator=generator, device=x.device, dtype=x.dtype)
                z = st.q_mean + torch.exp(st.q_logstd) * eps
                logp = -0.5 * ((z - st.p_mean) * torch.exp(-st.p_logstd)) ** 2 - st.p_logstd
                logq = -0.5 * eps**2 - st.q_logstd
                acc.append((logp - logq).flatten(1).sum(1))
                return z

            td = self.top_down(acts, select)
            logpx = discretized_logistic_logp(x, td.x_loc, td.x_logscale, n_bins=self.n_bins, low=self.low,
                                              high=self.high).flatten(1).sum(1)
            ws.append(torch.stack(acc, 0).sum(0) + logpx)
        w = torch.stack(ws, dim=0)
        return torch.logsumexp(w, dim=0) - math.log(k)

    # ---------------------------------------------------------------- sampling
    def sample(
        self,
        n: int,
        *,
        temperature: float | Sequence[float] = 1.0,
        generator: RandomSource = None,
        device: torch.device | str | None = None,
    ) -> HVAESample:
        """Ancestral samples ``z_l ~ N(pm, (T_l pσ)²)`` with a temperature per level; returns decoder means.

        Args:
            n: Number of samples.
            temperature: One float, ``(t_top, t_bottom)`` (linear schedule) or one value per level.
            generator: Per-sample noise source.
            device: Device (default: the parameters').

        Returns:
            :class:`HVAESample`.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int; got {n!r}")
        temps = level_temperatures(temperature, self.n_levels)
        generator = _streams(generator, n)
        dev = device if device is not None else self.h_top.device
        dtype = self.h_top.dtype

        def select(level: int, st: LevelStats) -> Tensor:
            eps = randn_per_sample(st.p_mean.shape, generator=generator, device=dev, dtype=dtype)
            return st.p_mean + temps[level] * torch.exp(st.p_logstd) * eps

        td = self.top_down(None, select, n=n)
        return HVAESample(td.x_mean, td.zs)


# ----------------------------------------------------------------------------------------------- linear rig
class LinearGaussianHVAE(nn.Module):
    """A one- or two-level linear-Gaussian hierarchical VAE with an exact encoder (see the module docstring).

    Args:
        W1: ``(d, k1)`` loading of ``z_1``.
        bias: ``(d,)`` offset ``b``.
        decoder_std: ``γ`` of ``x | z ~ N(μ(z), γ² I)``.
        W2: ``(d, k2)`` loading of ``z_2`` (two levels) or ``None`` (one level).
        B: ``(k2, k1)`` prior mean map of ``z_2 | z_1``.
        s: ``(k2,)`` prior std of ``z_2 | z_1``.
    """

    def __init__(self, W1: Tensor, bias: Tensor, decoder_std: float, *, W2: Tensor | None = None,
                 B: Tensor | None = None, s: Tensor | None = None) -> None:
        super().__init__()
        if W1.ndim != 2 or bias.shape != (W1.shape[0],):
            raise ValueError(f"W1 must be (d, k1) and bias (d,); got {tuple(W1.shape)} and {tuple(bias.shape)}")
        if not decoder_std > 0:
            raise ValueError(f"decoder_std must be > 0; got {decoder_std!r}")
        self.register_buffer("W1", W1.double())
        self.register_buffer("bias", bias.double())
        self.gamma = float(decoder_std)
        self.two = W2 is not None
        if self.two:
            if B is None or s is None or W2.shape[0] != W1.shape[0] or B.shape != (W2.shape[1], W1.shape[1]):
                raise ValueError("two levels need W2 (d, k2), B (k2, k1) and s (k2,)")
            self.register_buffer("W2", W2.double())
            self.register_buffer("B", B.double())
            self.register_buffer("s", s.double())

    @property
    def n_levels(self) -> int:
        """1 or 2."""
        return 2 if self.two else 1

    @property
    def event_shape(self) -> tuple[int, ...]:
        """``(d,)``."""
        return (int(self.W1.shape[0]),)

    def _level1(self) -> tuple[Tensor, Tensor]:
        """``x | z_1 ~ N(M z_1 + b, C)`` with ``z_2`` marginalised."""
        d = self.W1.shape[0]
        eye = torch.eye(d, dtype=self.W1.dtype, device=self.W1.device)
        if not self.two:
            return self.W1, self.gamma**2 * eye
        M = self.W1 + self.W2 @ self.B
        return M, self.W2 @ torch.diag(self.s**2) @ self.W2.T + self.gamma**2 * eye

    def marginal(self) -> tuple[Tensor, Tensor]:
        """Mean and covariance of ``p(x)`` (float64)."""
        M, C = self._level1()
        return self.bias, M @ M.T + C

    def bottom_up(self, x: Tensor) -> Tensor:
        """The exact encoder needs ``x`` itself."""
        if x.ndim != 2 or tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"LinearGaussianHVAE: x must have shape (B, {self.event_shape[0]}); got {tuple(x.shape)}")
        return x

    def top_down(self, acts: Tensor | None, select: Select, *, n: int | None = None) -> TopDown:
        """Exact top-down pass: level stats are the true ``p(z_l | x, z_<l)`` (diagonal part)."""
        dtype = acts.dtype if acts is not None else torch.float64
        batch = acts.shape[0] if acts is not None else int(n or 0)
        if batch < 1:
            raise ValueError("LinearGaussianHVAE.top_down: pass n= without activations")
        k1 = self.W1.shape[1]
        xc = None if acts is None else acts.double() - self.bias
        zero = torch.zeros(batch, k1, dtype=torch.float64, device=self.W1.device)
        st1 = LevelStats(zero, zero.clone())
        if xc is not None:
            M, C = self._level1()
            Ci_M = torch.linalg.solve(C, M)
            prec = torch.eye(k1, dtype=torch.float64, device=M.device) + M.T @ Ci_M
            cov = torch.linalg.inv(prec)
            qm = xc @ Ci_M @ cov.T
            st1 = LevelStats(zero, zero.clone(), qm, 0.5 * torch.log(torch.diagonal(cov)).expand(batch, k1))
        st1 = LevelStats(*(None if t is None else t.to(dtype) for t in
                           (st1.p_mean, st1.p_logstd, st1.q_mean, st1.q_logstd)))
        z1 = select(0, st1)
        zs, stats = [z1], [st1]
        mean = z1.double() @ self.W1.T
        if self.two:
            pm = z1.double() @ self.B.T
            plog = torch.log(self.s).expand(batch, -1)
            st2 = LevelStats(pm, plog)
            if xc is not None:
                prec = torch.diag(self.s**-2) + self.W2.T @ self.W2 / self.gamma**2
                cov = torch.linalg.inv(prec)
                rhs = pm * self.s**-2 + (xc - z1.double() @ self.W1.T) @ self.W2 / self.gamma**2
                st2 = LevelStats(pm, plog, rhs @ cov.T, 0.5 * torch.log(torch.diagonal(cov)).expand(batch, -1))
            st2 = LevelStats(*(None if t is None else t.to(dtype) for t in
                               (st2.p_mean, st2.p_logstd, st2.q_mean, st2.q_logstd)))
            z2 = select(1, st2)
            zs.append(z2)
            stats.append(st2)
            mean = mean + z2.double() @ self.W2.T
        mean = (mean + self.bias).to(dtype)
        return TopDown(zs, stats, mean, torch.full_like(mean, math.log(self.gamma)))

    def decode(self, zs: Sequence[Tensor]) -> TopDown:
        """Decoder with every group given."""
        return self.top_down(None, lambda level, st: zs[level], n=zs[0].shape[0])

    @classmethod
    def random(cls, d: int = 16, k: int = 2, *, levels: int = 2, decoder_std: float = 0.3,
               generator: torch.Generator | None = None) -> LinearGaussianHVAE:
        """A random instance whose posteriors are diagonal (mutually orthogonal loading columns, diagonal ``B``).

        Args:
            d: Data dimension (``≥ levels·k``).
            k: Latent dimension per level.
            levels: 1 or 2.
            decoder_std: ``γ``.
            generator: Random generator.
        """
        if levels not in (1, 2) or d < levels * k:
            raise ValueError(f"levels must be 1 or 2 and d >= levels*k; got levels={levels}, d={d}, k={k}")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        W1 = Q[:, :k] * (1.0 + torch.rand(k, generator=g, dtype=torch.float64))
        bias = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
        if levels == 1:
            return cls(W1, bias, decoder_std)
        W2 = Q[:, k: 2 * k] * (0.5 + torch.rand(k, generator=g, dtype=torch.float64))
        B = torch.diag(torch.randn(k, generator=g, dtype=torch.float64))
        s = 0.5 + 0.5 * torch.rand(k, generator=g, dtype=torch.float64)
        return cls(W1, bias, decoder_std, W2=W2, B=B, s=s)
