"""Exponential moving average of a network's weights, with its update count and warm-up.

Update ``k`` (counting from 0) uses the decay

    d_k = min(decay, 1 − (1 + k)^(−power))    with warm-up,      d_k = decay    without,

and sets ``θ_ema ← d_k·θ_ema + (1 − d_k)·θ`` for every floating-point parameter; buffers are copied. The
warm-up is the ``inv_gamma = 1`` case of Karras et al.'s ``EMAWarmup`` (k-diffusion; also diffusers'
``EMAModel`` with ``use_ema_warmup``): ``d_0 = 0`` so the average starts at the first weights instead of the
random initialisation, and ``d_k`` reaches 0.999 after ≈ 3·10⁴ updates for ``power = 2/3``
(≈ 10⁴ for ``power = 3/4``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMA", "ema_decay_at"]


def ema_decay_at(step: int, *, decay: float, warmup: bool = True, power: float = 2.0 / 3.0) -> float:
    """The decay ``d_k`` of update number ``step`` (0-based).

    Args:
        step: Number of updates already applied.
        decay: Target (maximal) decay in ``[0, 1)``.
        warmup: Apply the warm-up ``1 − (1 + k)^(−power)``.
        power: Warm-up exponent ``> 0``.

    Returns:
        The decay as a float.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must lie in [0, 1), got {decay}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not warmup:
        return float(decay)
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    return float(min(decay, 1.0 - (1.0 + step) ** (-power)))


class EMA:
    """A shadow copy of ``model`` updated by exponential moving average.

    Args:
        model: The trained network (its weights are copied; the copy is in eval mode without gradients).
        decay: Target decay.
        warmup: Use the warm-up schedule of :func:`ema_decay_at`.
        power: Warm-up exponent.

    Example:
        .. code-block:: python

            ema = EMA(net, decay=0.999)
            ...; optimizer.step(); ema.update(net)
            sample_with(ema.module)
    """

    def __init__(
        self, model: nn.Module, *, decay: float = 0.999, warmup: bool = True, power: float = 2.0 / 3.0
    ) -> None:
        ema_decay_at(0, decay=decay, warmup=warmup, power=power)  # validates the arguments
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.power = float(power)
        self.step = 0

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        return ema_decay_at(self.step, decay=self.decay, warmup=self.warmup, power=self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Average ``model``'s current weights into the shadow copy and count the update.

        Args:
            model: The network being trained (same architecture; a DDP wrapper must be unwrapped first).

        Returns:
            The decay that was used.
        """
        d = self.current_decay()
        params = dict(model.named_parameters())
        for name, shadow in self.module.named_parameters():
            src = params[name].detach()
            if shadow.is_floating_point():
                shadow.mul_(d).add_(src.to(shadow.dtype), alpha=1.0 - d)
            else:
                shadow.copy_(src)
        buffers = dict(model.named_buffers())
        for name, shadow in self.module.named_buffers():
            shadow.copy_(buffers[name])
        self.step += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        """Plain state (tensors, numbers, bools): loadable with ``torch.load(weights_only=True)``."""
        return {
            "step": self.step,
            "decay": self.decay,
            "warmup": self.warmup,
            "power": self.power,
            "weights": self.module.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the shadow weights and the update count (decay settings are restored too)."""
        missing = {"step", "decay", "warmup", "power", "weights"} - set(state)
        if missing:
            raise ValueError(f"EMA state is missing {sorted(missing)}")
        self.module.load_state_dict(state["weights"])
        self.step = int(state["step"])
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.power = float(state["power"])
