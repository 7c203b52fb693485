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
import weakref
from typing import Any

import torch
from torch import nn

__all__ = ["EMA", "EMA_BACKENDS", "DiffusersEMA", "ema_decay_at", "make_ema"]


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


class _Pairs:
    """Shadow tensors of an :class:`EMA` paired with the tensors of one source model (cache of ``update``).

    Valid while the source and the shadow module hold the same parameter and buffer objects; checking that
    reads the cached non-empty parameter/buffer dicts (about a microsecond) instead of walking
    ``named_parameters()`` (tens).
    """

    def __init__(
        self,
        model: nn.Module,
        shadow: nn.Module,
        float_shadows: list[torch.Tensor],
        float_sources: list[torch.Tensor],
        copy_shadows: list[torch.Tensor],
        copy_sources: list[torch.Tensor],
    ) -> None:
        self.model_ref = weakref.ref(model)
        self.shadow_ref = weakref.ref(shadow)
        self.float_shadows, self.float_sources = float_shadows, float_sources
        self.copy_shadows, self.copy_sources = copy_shadows, copy_sources
        self.same_dtype = all(
            s.dtype == t.dtype and s.device == t.device for s, t in zip(float_shadows, float_sources)
        )
        # the parameter/buffer dicts that hold tensors (a tensor registered later in an empty one has no shadow
        # and would not be averaged anyway)
        self._dicts = [
            d for mods in (model.modules(), shadow.modules()) for m in mods for d in (m._parameters, m._buffers) if d
        ]
        self._ids = self._identity()

    def _identity(self) -> list[int]:
        return [id(v) for d in self._dicts for v in d.values()]

    def still_valid(self, model: nn.Module, shadow: nn.Module) -> bool:
        """Whether ``model`` and ``shadow`` are the cached modules and hold the same tensor objects."""
        return self.model_ref() is model and self.shadow_ref() is shadow and self._identity() == self._ids


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
        self._cache: _Pairs | None = None

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        return ema_decay_at(self.step, decay=self.decay, warmup=self.warmup, power=self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Average ``model``'s current weights into the shadow copy and count the update.

        The floating-point parameters are updated by one fused multi-tensor call, ``torch._foreach_lerp_(shadows,
        θ, 1 − d)`` (``shadow + (1 − d)·(θ − shadow)``, one pass over the weights; PyTorch's own
        ``get_ema_multi_avg_fn`` computes the average the same way); the pairing of shadow and source tensors is
        built once per ``model`` and rebuilt when model, the shadow module or any of their parameter or buffer
        objects change.

        Args:
            model: The network being trained (same architecture; a DDP wrapper must be unwrapped first).

        Returns:
            The decay that was used.
        """
        d = self.current_decay()
        pairs = self._pairs(model)
        shadows, sources = pairs.float_shadows, pairs.float_sources  # read under no_grad: no detach needed
        if shadows:
            if pairs.same_dtype:
                torch._foreach_lerp_(shadows, sources, 1.0 - d)
            else:
                for shadow, src in zip(shadows, sources):
                    shadow.lerp_(src.to(shadow.dtype), 1.0 - d)
        for shadow, src in zip(pairs.copy_shadows, pairs.copy_sources):
            shadow.copy_(src)
        self.step += 1
        return d

    def _pairs(self, model: nn.Module) -> _Pairs:
        """The cached (shadow, source) tensor lists for ``model`` (rebuilt if its tensors were replaced)."""
        cached = self._cache
        if cached is not None and cached.still_valid(model, self.module):
            return cached
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        float_shadows: list[torch.Tensor] = []
        float_sources: list[torch.Tensor] = []
        copy_shadows: list[torch.Tensor] = []
        copy_sources: list[torch.Tensor] = []
        for name, shadow in self.module.named_parameters():
            if name not in params:
                raise ValueError(f"EMA.update: the model has no parameter {name!r}; pass the network the EMA copies")
            if shadow.is_floating_point():
                float_shadows.append(shadow)
                float_sources.append(params[name])
            else:
                copy_shadows.append(shadow)
                copy_sources.append(params[name])
        for name, shadow in self.module.named_buffers():
            if name not in buffers:
                raise ValueError(f"EMA.update: the model has no buffer {name!r}; pass the network the EMA copies")
            copy_shadows.append(shadow)
            copy_sources.append(buffers[name])
        self._cache = _Pairs(model, self.module, float_shadows, float_sources, copy_shadows, copy_sources)
        return self._cache

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


#: EMA implementations selectable with ``train.ema_backend``.
EMA_BACKENDS: tuple[str, ...] = ("genlab", "diffusers")


class DiffusersEMA(EMA):
    """:class:`EMA`'s interface backed by ``diffusers.training_utils.EMAModel`` (``train.ema_backend: diffusers``).

    diffusers' ``EMAModel(use_ema_warmup=True, inv_gamma=1, power=p)`` uses the decay
    ``min(decay, 1 − (1 + k)^(−p))`` at its update ``k`` (0-based), the schedule of :func:`ema_decay_at`, so the two
    backends give the same weights up to floating-point rounding (diffusers computes ``θ_ema −= (1 − d)(θ_ema − θ)``;
    tested to 1e-12 in float64). Without warm-up diffusers ramps the decay as ``(1 + k)/(10 + k)`` where genlab
    uses the constant ``decay``: that case is refused rather than silently different. diffusers averages
    parameters only; buffers are copied here as genlab's EMA does. The averaged tensors are this object's
    ``module`` parameters themselves (diffusers updates them in place), so sampling, checkpoints and
    ``state_dict`` are the same as with the genlab backend.

    Args:
        model: The trained network.
        decay: Target decay.
        warmup: Must be true (see above).
        power: Warm-up exponent.
        foreach: Use diffusers' multi-tensor update.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        decay: float = 0.999,
        warmup: bool = True,
        power: float = 2.0 / 3.0,
        foreach: bool = True,
    ) -> None:
        if not warmup:
            raise ValueError(
                "ema_backend='diffusers' needs ema_warmup=true: without warm-up diffusers' EMAModel ramps the decay "
                "as (1 + k)/(10 + k), genlab keeps it constant; use ema_backend='genlab' for a constant decay"
            )
        super().__init__(model, decay=decay, warmup=warmup, power=power)
        from diffusers.training_utils import EMAModel

        self._float = [p for p in self.module.parameters() if p.is_floating_point()]
        self._ema = EMAModel(
            self._float, decay=self.decay, min_decay=0.0, update_after_step=0, use_ema_warmup=True, inv_gamma=1.0,
            power=self.power, foreach=foreach,
        )
        self._ema.shadow_params = self._float  # average into this module's own tensors (in place)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """One diffusers ``EMAModel.step`` on ``model``'s parameters, then copy buffers; returns the decay used."""
        d = self.current_decay()
        pairs = self._pairs(model)
        self._ema.optimization_step = self.step
        self._ema.step(pairs.float_sources)
        for shadow, src in zip(pairs.copy_shadows, pairs.copy_sources):
            shadow.copy_(src)
        self.step += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        """:meth:`EMA.state_dict` plus ``backend`` (a checkpoint says which implementation averaged it)."""
        return {**super().state_dict(), "backend": "diffusers"}


def make_ema(
    model: nn.Module, *, backend: str = "genlab", decay: float = 0.999, warmup: bool = True, power: float = 2.0 / 3.0
) -> EMA:
    """The EMA of ``model`` with the implementation ``backend`` (one of :data:`EMA_BACKENDS`).

    Raises:
        ValueError: For an unknown backend (or diffusers without warm-up).
    """
    if backend == "genlab":
        return EMA(model, decay=decay, warmup=warmup, power=power)
    if backend == "diffusers":
        return DiffusersEMA(model, decay=decay, warmup=warmup, power=power)
    raise ValueError(f"ema_backend must be one of {list(EMA_BACKENDS)}; got {backend!r}")
