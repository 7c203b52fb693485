"""A continuous-time wrapper around ``diffusers.UNet2DModel`` with channel conditioning and class labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genlab.models.layers import check_int
from genlab.utils import as_time

__all__ = ["UNet"]

_UNET_ACTIVATIONS = ("silu", "mish", "gelu", "relu")


def _spatial_size(sample_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(sample_size, int) and not isinstance(sample_size, bool):
        size = (sample_size, sample_size)
    elif isinstance(sample_size, Sequence) and len(sample_size) == 2:
        size = (sample_size[0], sample_size[1])
    else:
        raise ValueError(f"sample_size must be an int or a (height, width) pair; got {sample_size!r}")
    for s in size:
        check_int("sample_size", s)
    return size


class UNet(nn.Module):
    r"""``diffusers.UNet2DModel`` driven by a float time ``t ∈ [0, 1]``, extra condition channels and labels.

    The architecture is the DDPM U-Net (Ho et al., 2020, App. B) as implemented by diffusers: ResNet blocks
    with a sinusoidal time embedding, one resolution level per entry of ``block_out_channels`` (stride-2
    down-sampling between levels), a middle block and skip connections.

    What this wrapper adds:

    * **Float time.** ``UNet2DModel.forward`` turns a Python number into a ``torch.long`` tensor, silently
      quantising the time. Here ``t`` (float, 0-d or ``(B,)``) always reaches the model as a float32 tensor of
      shape ``(B,)`` equal to ``t · time_scale``, so ``t = 0.3002`` and ``t = 0.3004`` give different outputs.
    * **Conditioning images** (bridges, data-dependent couplings) are concatenated to ``x`` along the channel
      axis: the inner model sees ``in_channels + cond_channels`` input channels.
    * **Class labels** use diffusers' learned class embedding (``num_class_embeds``), added to the time
      embedding.
    * **Any spatial size.** With ``L = len(block_out_channels)`` the inner model needs sizes divisible by
      ``2^(L-1)``; other sizes are zero-padded at the bottom/right and the output is cropped back. A size
      smaller than ``2^(L-1)`` (a bottleneck below one pixel) is refused.

    Attention (``attention=True``) is placed at the lowest resolution level and in the middle block; the
    default has none, which keeps a CPU forward of a ``(16, 1, 16, 16)`` batch in the millisecond range.

    Args:
        sample_size: Spatial size ``H`` (square) or ``(H, W)`` of the inputs.
        in_channels: Channels of ``x``.
        out_channels: Channels of the output.
        cond_channels: Channels of the conditioning image ``cond`` (0: none).
        num_classes: Number of class labels (``None``: unconditional on labels).
        block_out_channels: Channels per resolution level.
        layers_per_block: ResNet layers per down block (up blocks get one more, as in diffusers).
        attention: Add self-attention at the lowest resolution and in the middle block.
        time_scale: Factor mapping ``t ∈ [0, 1]`` to the model's time input (1000 matches DDPM's range).
        mid_block: Include the middle block.
        norm_num_groups: GroupNorm groups; ``None`` picks ``min(32, gcd(block_out_channels))``.
        attention_head_dim: Channels per attention head.
        dropout: Dropout rate inside the ResNet blocks.
        activation: ``"silu"``, ``"mish"``, ``"gelu"`` or ``"relu"``.

    Example:
        .. code-block:: python

            net = UNet(16, 1, 1)                       # digits upsampled to 16x16
            v = net(x_t, t)                            # x_t: (B, 1, 16, 16), t: (B,) floats in [0, 1]
            bridge = UNet(16, 1, 1, cond_channels=1)   # v = bridge(x_t, t, cond=x0)
    """

    def __init__(
        self,
        sample_size: int | Sequence[int],
        in_channels: int,
        out_channels: int,
        *,
        cond_channels: int = 0,
        num_classes: int | None = None,
        block_out_channels: Sequence[int] = (32, 64),
        layers_per_block: int = 1,
        attention: bool = False,
        time_scale: float = 1000.0,
        mid_block: bool = True,
        norm_num_groups: int | None = None,
        attention_head_dim: int = 8,
        dropout: float = 0.0,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        height, width = _spatial_size(sample_size)
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        check_int("cond_channels", cond_channels, minimum=0)
        if num_classes is not None:
            check_int("num_classes", num_classes)
        if (
            isinstance(block_out_channels, (str, bytes))
            or not isinstance(block_out_channels, Sequence)
            or (len(block_out_channels) == 0)
        ):
            raise ValueError(
                f"block_out_channels must be a non-empty sequence of ints; got {block_out_channels!r}"
            )
        channels = tuple(check_int("block_out_channels", c) for c in block_out_channels)
        check_int("layers_per_block", layers_per_block)
        check_int("attention_head_dim", attention_head_dim)
        if not isinstance(attention, bool):
            raise TypeError(f"attention must be a bool; got {attention!r}")
        if not isinstance(mid_block, bool):
            raise TypeError(f"mid_block must be a bool; got {mid_block!r}")
        if not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(
                f"time_scale must be a finite float > 0 (1000 for DDPM-like nets); got {time_scale!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {dropout!r}")
        if activation not in _UNET_ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r} for UNet; choose one of {list(_UNET_ACTIVATIONS)}"
            )
        groups = min(32, math.gcd(*channels)) if norm_num_groups is None else norm_num_groups
        check_int("norm_num_groups", groups)
        if any(c % groups for c in channels):
            raise ValueError(
                f"norm_num_groups={groups} must divide every entry of block_out_channels={list(channels)}; "
                "pass norm_num_groups=None (auto) or channels that are multiples of it"
            )
        factor = 2 ** (len(channels) - 1)
        if min(height, width) < factor:
            raise ValueError(
                f"sample_size={sample_size} is too small for {len(channels)} resolution levels "
                f"(block_out_channels={list(channels)} down-samples by {factor}); use at most "
                f"{int(math.log2(min(height, width))) + 1} levels (a shorter block_out_channels) "
                "or a larger sample_size"
            )

        from diffusers.models.unets.unet_2d import UNet2DModel  # lazy: diffusers is slow to import

        n = len(channels)
        down = tuple("AttnDownBlock2D" if attention and i == n - 1 else "DownBlock2D" for i in range(n))
        up = tuple("AttnUpBlock2D" if attention and i == 0 else "UpBlock2D" for i in range(n))
        self.unet = UNet2DModel(
            sample_size=(height, width),
            in_channels=in_channels + cond_channels,
            out_channels=out_channels,
            time_embedding_type="positional",
            down_block_types=down,
            up_block_types=up,
            mid_block_type="UNetMidBlock2D" if mid_block else None,
            block_out_channels=channels,
            layers_per_block=layers_per_block,
            dropout=dropout,
            act_fn=activation,
            attention_head_dim=attention_head_dim,
            norm_num_groups=groups,
            add_attention=attention,
            num_class_embeds=num_classes,
        )
        self.sample_size = (height, width)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.cond_channels = cond_channels
        self.num_classes = num_classes
        self.time_scale = float(time_scale)
        self.size_multiple = factor
        self._config: dict[str, Any] = {
            "sample_size": sample_size if isinstance(sample_size, int) else [height, width],
            "in_channels": in_channels,
            "out_channels": out_channels,
            "cond_channels": cond_channels,
            "num_classes": num_classes,
            "block_out_channels": list(channels),
            "layers_per_block": layers_per_block,
            "attention": attention,
            "time_scale": float(time_scale),
            "mid_block": mid_block,
            "norm_num_groups": norm_num_groups,
            "attention_head_dim": attention_head_dim,
            "dropout": float(dropout),
            "activation": activation,
        }

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-serialisable); ``UNet(**net.config)`` rebuilds the architecture."""
        return dict(self._config)

    def model_time(self, t: Tensor | float, x: Tensor) -> Tensor:
        """The time input the inner diffusers model receives: ``t · time_scale`` as a float32 ``(B,)`` tensor.

        Args:
            t: Times: a float, a 0-d tensor or a ``(B,)`` tensor.
            x: The batch (gives ``B`` and the device).

        Returns:
            A float32 tensor of shape ``(B,)`` on ``x.device``.
        """
        t_vec = as_time(t, x, name="t", check_range=False)
        return (t_vec * self.time_scale).to(torch.float32)

    def forward(
        self,
        x: Tensor,
        t: Tensor | float,
        cond: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Evaluate the network.

        Args:
            x: Inputs of shape ``(B, in_channels, H, W)`` with ``(H, W) = sample_size``.
            t: Times: a float, a 0-d tensor or a ``(B,)`` tensor (never integer-cast).
            cond: Conditioning images ``(B, cond_channels, H, W)``; required iff ``cond_channels > 0``.
            labels: Integer class labels ``(B,)`` in ``[0, num_classes)``; required iff ``num_classes`` is
                set.

        Returns:
            Outputs of shape ``(B, out_channels, H, W)`` in ``x``'s dtype.
        """
        height, width = self.sample_size
        expected = (self.in_channels, height, width)
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, {height}, {width}) "
                f"(in_channels={self.in_channels}, sample_size={self.sample_size}); got {got}"
            )
        inputs = x
        if self.cond_channels > 0:
            if cond is None:
                raise ValueError(
                    f"this UNet was built with cond_channels={self.cond_channels}; pass cond of shape "
                    f"(B, {self.cond_channels}, {height}, {width})"
                )
            if cond.shape != (x.shape[0], self.cond_channels, height, width):
                raise ValueError(
                    f"cond must have shape ({x.shape[0]}, {self.cond_channels}, {height}, {width}) "
                    f"(batch, cond_channels, sample_size); got {tuple(cond.shape)}. Resize or upsample the "
                    "condition to the sample size first"
                )
            inputs = torch.cat([x, cond.to(x.dtype)], dim=1)
        elif cond is not None:
            raise ValueError(
                "cond was given but this UNet has cond_channels=0; build it with cond_channels=<C>"
            )
        if self.num_classes is not None:
            if labels is None:
                raise ValueError(
                    f"this UNet was built with num_classes={self.num_classes}; pass labels of shape (B,)"
                )
            if labels.shape != (x.shape[0],) or labels.dtype not in (torch.int64, torch.int32):
                raise ValueError(
                    f"labels must be an integer tensor of shape ({x.shape[0]},); "
                    f"got shape {tuple(labels.shape)} and dtype {labels.dtype}"
                )
            if bool(((labels < 0) | (labels >= self.num_classes)).any()):
                raise ValueError(
                    f"labels must lie in [0, {self.num_classes}) (num_classes={self.num_classes})"
                )
            labels = labels.to(device=x.device, dtype=torch.long)
        elif labels is not None:
            raise ValueError(
                "labels were given but this UNet has num_classes=None; build it with num_classes=<K>"
            )

        pad_h = -height % self.size_multiple
        pad_w = -width % self.size_multiple
        if pad_h or pad_w:
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h))
        out = self.unet(inputs, self.model_time(t, x), class_labels=labels).sample
        return out[..., :height, :width]
