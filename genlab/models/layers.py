"""Small building blocks shared by the networks: activations by name and Fourier time features."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "FourierTimeFeatures", "check_int", "make_activation"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Validate an integer constructor argument.

    Args:
        name: Argument name, used in the error message.
        value: The value passed.
        minimum: Smallest allowed value.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: If ``value`` is not an ``int`` (bools excluded) or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value


def make_activation(name: str, *, argument: str = "activation") -> nn.Module:
    """Instantiate an activation module from its name.

    Args:
        name: One of :data:`ACTIVATIONS` (``"silu"``, ``"relu"``, ``"gelu"``, ``"tanh"``, ``"elu"``,
            ``"softplus"``, ``"leaky_relu"``).
        argument: Name of the constructor argument, used in the error message.

    Returns:
        A fresh activation module.

    Raises:
        ValueError: If ``name`` is not a known activation.
    """
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown {argument} {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class FourierTimeFeatures(nn.Module):
    r"""Sin/cos features of a scalar time at log-spaced frequencies.

    .. math::
        \phi(t) = [\sin(\omega_1 t), \dots, \sin(\omega_m t), \cos(\omega_1 t), \dots, \cos(\omega_m t)],
        \qquad \omega_k = \omega_{\min} (\omega_{\max} / \omega_{\min})^{(k-1)/(m-1)},

    the deterministic ("positional") embedding of Vaswani et al. (2017, §3.5) used by DDPM (Ho et al., 2020),
    written for continuous ``t ∈ [0, 1]`` instead of integer steps: ``ω_max = 1000`` matches the usual
    ``t·1000`` scaling with the highest frequency, ``ω_min = 1`` gives features that vary slowly over
    ``[0, 1]``. The frequencies are rebuilt from the constructor arguments on every call (no buffer), so they
    never drift through a checkpoint or a ``.half()`` cast.

    Args:
        num_features: Output size ``2m`` (even, at least 2).
        min_frequency: Lowest angular frequency ``ω_min`` (rad per unit time).
        max_frequency: Highest angular frequency ``ω_max``.
    """

    def __init__(
        self, num_features: int, *, min_frequency: float = 1.0, max_frequency: float = 1000.0
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 2 or num_features % 2:
            raise ValueError(
                f"num_features must be an even int >= 2 (sin and cos pairs); got {num_features!r}"
            )
        if not 0 < min_frequency <= max_frequency:
            raise ValueError(
                f"need 0 < min_frequency <= max_frequency; got min_frequency={min_frequency}, "
                f"max_frequency={max_frequency}"
            )
        self.num_features = num_features
        self.min_frequency = float(min_frequency)
        self.max_frequency = float(max_frequency)

    def frequencies(
        self, *, device: torch.device | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """The angular frequencies ``ω_1 < … < ω_m`` (computed on the fly; the module holds no buffer).

        Args:
            device: Device of the result.
            dtype: Dtype of the result.

        Returns:
            A tensor of shape ``(num_features // 2,)``.
        """
        m = self.num_features // 2
        if m == 1:
            return torch.full((1,), self.min_frequency, device=device, dtype=dtype)
        ratio = math.log(self.max_frequency / self.min_frequency)
        return self.min_frequency * torch.exp(torch.linspace(0.0, ratio, m, device=device, dtype=dtype))

    def forward(self, t: Tensor) -> Tensor:
        """Embed times.

        Args:
            t: Times of shape ``(B,)``.

        Returns:
            Features of shape ``(B, num_features)`` in ``t``'s dtype (pass float64 times where the device
            allows, as :func:`genlab.utils.as_time` does, and cast the features afterwards).
        """
        if t.ndim != 1:
            raise ValueError(f"FourierTimeFeatures expects times of shape (B,); got {tuple(t.shape)}")
        angles = t[:, None] * self.frequencies(device=t.device, dtype=t.dtype)[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
