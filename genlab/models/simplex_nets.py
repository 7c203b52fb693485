"""Simplex networks for multimarginal interpolants: one network, K + 1 heads g_k(a, x) (Albergo, Boffi, Lindsey &
Vanden-Eijnden, ICLR'24, arXiv:2310.03695).

Both networks are called as ``net(x, a)`` with ``a`` of shape ``(B, K + 1)`` on the simplex and return the stacked
heads ``(B, K + 1, *x.shape[1:])``, the layout :class:`~genlab.models.MultimarginalField` evaluates along any path.
The simplex point enters as a conditioning vector (MLP) or as K + 1 constant conditioning channels (U-Net), and
its Gaussian weight a_0 also fills the networks' time slot (their Fourier time features then resolve the
Gaussian level finely). This input encoding is genlab's choice; the paper does not fix one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from genlab.models.mlp import TimeMLP
from genlab.models.unet import UNet

__all__ = ["SimplexMLP", "SimplexUNet"]


def _check_a(a: Tensor, x: Tensor, K: int) -> Tensor:
    if not isinstance(a, Tensor) or a.shape != (x.shape[0], K + 1):
        got = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
        raise ValueError(f"a must be the simplex points, shape ({x.shape[0]}, K+1={K + 1}); got {got}")
    return a.to(x.dtype)


def _check_K(K: object) -> int:
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"K (the number of data marginals) must be an int >= 1; got {K!r}")
    return K


class SimplexMLP(nn.Module):
    """MLP simplex network for vector data: ``TimeMLP(x; t = a_0, cond = a)`` with ``(K + 1)·d`` outputs.

    Args:
        data_dim: Size d of the data vectors.
        K: Number of data marginals (heads: K + 1, the first for the Gaussian).
        hidden: Hidden width.
        depth: Hidden layers.
        time_features: Fourier features of a_0.
        activation: Activation name (see :class:`~genlab.models.TimeMLP`).
    """

    def __init__(
        self,
        data_dim: int,
        K: int,
        *,
        hidden: int = 256,
        depth: int = 4,
        time_features: int = 32,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        self.K = _check_K(K)
        if isinstance(data_dim, bool) or not isinstance(data_dim, int) or data_dim < 1:
            raise ValueError(f"data_dim must be an int >= 1; got {data_dim!r}")
        self.data_dim = data_dim
        self.mlp = TimeMLP(
            data_dim, hidden=hidden, depth=depth, time_features=time_features, cond_dim=K + 1,
            out_dim=(K + 1) * data_dim, activation=activation,
        )
        self.config: dict[str, Any] = {
            "data_dim": data_dim, "K": K, "hidden": hidden, "depth": depth, "time_features": time_features,
            "activation": activation,
        }

    def forward(self, x: Tensor, a: Tensor, cond: Any | None = None) -> Tensor:
        """Heads ``(B, K + 1, d)`` at ``(a, x)``; ``cond`` must be ``None`` (no conditioning)."""
        if cond is not None:
            raise ValueError("SimplexMLP takes no conditioning; pass cond=None")
        a = _check_a(a, x, self.K)
        return self.mlp(x, a[:, 0], a).reshape(x.shape[0], self.K + 1, self.data_dim)


class SimplexUNet(nn.Module):
    """U-Net simplex network for images: a :class:`~genlab.models.UNet` with ``(K + 1)·C`` output channels, the
    simplex point as K + 1 constant conditioning channels and a_0 as its time.

    Args:
        K: Number of data marginals.
        sample_size: Image side (or ``[H, W]``).
        channels: Image channels C.
        block_out_channels: U-Net widths.
        layers_per_block: Residual layers per block.
        attention: Attention blocks.
        norm_num_groups: Group-norm groups (``None``: the U-Net's default).
    """

    def __init__(
        self,
        K: int,
        sample_size: int | Sequence[int],
        *,
        channels: int = 1,
        block_out_channels: Sequence[int] = (32, 64),
        layers_per_block: int = 1,
        attention: bool = False,
        norm_num_groups: int | None = None,
    ) -> None:
        super().__init__()
        self.K = _check_K(K)
        self.channels = int(channels)
        self.unet = UNet(
            sample_size, channels, (K + 1) * channels, cond_channels=K + 1,
            block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block, attention=attention,
            norm_num_groups=norm_num_groups,
        )
        self.config: dict[str, Any] = {
            "K": K, "sample_size": sample_size if isinstance(sample_size, int) else list(sample_size),
            "channels": channels, "block_out_channels": list(block_out_channels),
            "layers_per_block": layers_per_block, "attention": attention, "norm_num_groups": norm_num_groups,
        }

    def forward(self, x: Tensor, a: Tensor, cond: Any | None = None) -> Tensor:
        """Heads ``(B, K + 1, C, H, W)`` at ``(a, x)``; ``cond`` must be ``None``."""
        if cond is not None:
            raise ValueError("SimplexUNet takes no conditioning; pass cond=None")
        a = _check_a(a, x, self.K)
        maps = a[:, :, None, None].expand(-1, -1, *x.shape[2:])
        out = self.unet(x, a[:, 0], cond=maps)
        return out.reshape(x.shape[0], self.K + 1, *x.shape[1:])
