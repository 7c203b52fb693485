r"""Bridge matching, iterative Markovian fitting and DSBM as one stateful objective.

Shi, De Bortoli, Campbell & Doucet (NeurIPS 2023, "Diffusion Schrödinger Bridge Matching"; ``reference/
interpolants.md`` §7). The reference process is ``σW`` (``σ² = ε``); its bridge is genlab's
``BrownianBridge(σ)``: ``x_t = (1−t)x0 + t x1 + σ√(t(1−t)) z``.

* **Reciprocal projection** ``R(Π)``: keep the coupling ``Π(x0, x1)``, redraw the interior from the bridge — here,
  sampling the path ``x_t`` of each pair.
* **Markovian projection** ``M(Π)``: the SDE ``dX = v_f(X, t) dt + σ dW`` with
  ``v_f(x, t) = E_Π[(X1 − X_t)/(1 − t) | X_t = x]``, learnt by regression on the target
  ``(x1 − x_t)/(1 − t) = x1 − x0 − σ√(t/(1−t)) z`` (paper eq. 9; DSBM's ``get_train_tuple``); the backward
  network ``v_b(x, t) = E_Π[(X0 − X_t)/t | X_t = x]`` on ``(x0 − x_t)/t`` drives the time-reversed SDE.
* **IMF / DSBM** (paper Alg. 1): ``Π^{2n+1} = M(Π^{2n})``, ``Π^{2n+2} = R(Π^{2n+1})``, alternating directions so
  that each network is fitted on pairs whose *data* end is real: the backward network on ``(x0, x̂1)`` with
  ``x̂1`` the forward SDE run from real ``x0``, the forward network on ``(x̂0, x1)`` with ``x̂0`` the backward SDE
  run from real ``x1``. Phase 0 fits on the first coupling: ``"independent"`` (the batch's pairs, e.g.
  ``Independent(source=p0)``; with a single phase this is *bridge matching*) or ``"ref"`` (``(x0, x0 + σξ)``,
  the reference's own coupling; the paper's default for DSBM).
* **Probability-flow ODE** after training: velocity ``(v_f − v_b)/2``.

genlab's SDE samplers integrate ``dX = b_F dt + √(2ε_SI) dW`` forward and ``dX = b_B dt + √(2ε_SI) dW̄``
backward, so the forward network is a Field of kind ``drift_fwd`` and ``−v_b`` one of kind ``drift_bwd``, both
with ``ε_SI = σ²/2`` (the identity ``v_f = b + (σ²/2) s``, reference §7). The pairs of a phase are simulated
online, one batch at a time, by the other network's EMA weights (frozen during the phase, since only one
network trains) with a registered SDE sampler, through :class:`~genlab.couplings.ModelCoupling`.

Deviations said plainly: the paper regenerates a cached data set of pairs at each outer iteration; here each batch
is simulated online from the same frozen network, which draws from the same law. Phase lengths are fixed
(``phase_steps``), as in the paper's code (``num_steps`` per inner iteration).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from genlab.couplings import Coupling, CouplingSample, ModelCoupling
from genlab.interpolants import BrownianBridge, Interpolant
from genlab.models import Field
from genlab.training.components import Components, split_labels
from genlab.training.config import RunConfig
from genlab.training.objective import LossOutput, ObjectiveBase, register_objective, sample_times
from genlab.utils import check_finite, randn_like_per_sample

__all__ = ["DSBM", "DSBMObjective", "NegatedNet", "PFODENet"]

Direction = Literal["forward", "backward"]


class NegatedNet(nn.Module):
    """``−net(x, t)``: DSBM's backward network ``v_b`` seen as genlab's backward drift ``b_B = −v_b``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, t: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``−net(x, t, ...)``."""
        return -self.net(x, t, *args, **kwargs)


class PFODENet(nn.Module):
    """``(v_f − v_b)/2``: the probability-flow velocity of a forward/backward DSBM pair (paper §4)."""

    def __init__(self, forward_net: nn.Module, backward_net: nn.Module) -> None:
        super().__init__()
        self.forward_net, self.backward_net = forward_net, backward_net

    def forward(self, x: Tensor, t: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``(v_f(x, t) − v_b(x, t)) / 2``."""
        return 0.5 * (self.forward_net(x, t, *args, **kwargs) - self.backward_net(x, t, *args, **kwargs))


def _sigma_of(interpolant: Interpolant) -> float:
    """σ of a Brownian-bridge path (γ(½) = σ/2), checking that the path is one."""
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    c = interpolant.schedule.coeffs(t)
    alpha, beta, gamma = (v.to(torch.float64) for v in (c.alpha, c.beta, c.gamma))
    sigma = float(2 * gamma[1])
    ok = (torch.allclose(alpha, 1 - t) and torch.allclose(beta, t) and sigma > 0
          and math.isclose(float(gamma[0]), sigma * math.sqrt(0.25 * 0.75), rel_tol=1e-9))
    if not ok or interpolant.conditional_source or interpolant.gaussian_source:
        raise ValueError(f"DSBM needs the Brownian-bridge path BrownianBridge(sigma) with a data source; got "
                         f"{interpolant!r} (set interpolant: {{name: brownian_bridge, sigma: ...}})")
    return sigma


class DSBM(ObjectiveBase):
    """Bridge matching / IMF / DSBM with forward and backward drift networks (see the module docstring).

    Modules: ``"forward"`` (``v_f``) and ``"backward"`` (``v_b``), each called ``net(x_t, t)``. Phase ``p``
    covers optimiser steps ``[p·phase_steps, (p+1)·phase_steps)``; the trained direction alternates starting
    with ``first`` (DSBM's code starts with the backward network). State: the phase index.

    Args:
        forward_net: ``v_f``.
        backward_net: ``v_b``.
        sigma: Reference noise ``σ > 0`` (``σ² = ε``).
        coupling: Coupling of the data batches: it provides real ``x0`` (source data) and real ``x1`` (target
            data), e.g. ``Independent(source=p0)``, or ``Paired`` over an unpaired two-set data set.
        phase_steps: Optimiser steps per Markovian projection.
        first: Direction trained in phase 0.
        first_coupling: ``"independent"`` (the coupling's pairs) or ``"ref"`` (``(x0, x0 + σξ)``).
        sampler: Registered SDE sampler used to simulate pairs (``"euler_maruyama"`` or ``"sde_heun"``).
        steps: Grid steps of that simulation.
        t_eps: Training times are uniform on ``[t_eps, 1 − t_eps]`` (DSBM: 1e−3).

    Raises:
        ValueError: For a bad ``sigma``, ``phase_steps``, ``steps``, ``first`` or ``first_coupling``.
        TypeError: If a network is not an ``nn.Module`` or ``coupling`` is not a Coupling.
    """

    def __init__(
        self,
        forward_net: nn.Module,
        backward_net: nn.Module,
        *,
        sigma: float,
        coupling: Coupling,
        phase_steps: int = 1000,
        first: Direction = "backward",
        first_coupling: Literal["independent", "ref"] = "independent",
        sampler: str = "euler_maruyama",
        steps: int = 50,
        t_eps: float = 1e-3,
    ) -> None:
        for name, net in (("forward_net", forward_net), ("backward_net", backward_net)):
            if not isinstance(net, nn.Module):
                raise TypeError(f"{name} must be an nn.Module called as net(x_t, t); got {type(net).__name__}")
        if forward_net is backward_net:
            raise ValueError("forward_net and backward_net must be two distinct modules (pass a copy)")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite float > 0 (σ² = ε of the reference); got {sigma!r}")
        if not isinstance(coupling, Coupling):
            raise TypeError(f"coupling must be a Coupling; got {type(coupling).__name__}")
        for name, value in (("phase_steps", phase_steps), ("steps", steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if first not in ("forward", "backward"):
            raise ValueError(f"first must be 'forward' or 'backward'; got {first!r}")
        if first_coupling not in ("independent", "ref"):
            raise ValueError(f"first_coupling must be 'independent' or 'ref'; got {first_coupling!r}")
        if sampler not in ("euler_maruyama", "sde_heun"):
            raise ValueError(f"sampler must be an SDE sampler ('euler_maruyama' or 'sde_heun'); got {sampler!r}")
        if not 0 < t_eps < 0.5:
            raise ValueError(f"t_eps must lie in (0, 0.5); got {t_eps!r}")
        self.nets = {"forward": forward_net, "backward": backward_net}
        self.sigma = float(sigma)
        self.interpolant = BrownianBridge(self.sigma)
        self.coupling = coupling
        self.phase_steps, self.first, self.first_coupling = int(phase_steps), first, first_coupling
        self.sampler, self.steps, self.t_eps = sampler, int(steps), float(t_eps)
        self.phase = 0
        self._pairers = {
            "forward": ModelCoupling(self._simulate_backward, base=coupling, direction="backward"),
            "backward": ModelCoupling(self._simulate_forward, base=coupling, direction="forward"),
        }

    # ------------------------------------------------------------------ protocol
    def modules(self) -> dict[str, nn.Module]:
        """``{"forward": v_f, "backward": v_b}``."""
        return dict(self.nets)

    def direction(self, phase: int | None = None) -> Direction:
        """The network trained in ``phase`` (default: the current one)."""
        p = self.phase if phase is None else phase
        other: Direction = "forward" if self.first == "backward" else "backward"
        return self.first if p % 2 == 0 else other

    def _field(self, name: str, net: nn.Module) -> Field:
        eps = self.sigma**2 / 2
        if name == "forward":
            return Field(net, self.interpolant, "drift_fwd", eps=eps)
        return Field(NegatedNet(net), self.interpolant, "drift_bwd", eps=eps)

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        """``forward`` (``drift_fwd``), ``backward`` (``drift_bwd`` = ``−v_b``) and ``pf_ode`` (``velocity``)."""
        nets = {k: (self.module(k, ema=True) if ema else self.nets[k]) for k in self.nets}
        out = {k: self._field(k, nets[k]) for k in ("forward", "backward")}
        out["pf_ode"] = Field(PFODENet(nets["forward"], nets["backward"]), self.interpolant, "velocity")
        return out

    def _simulate(self, name: str, x: Tensor, generator: torch.Generator | None) -> Tensor:
        from genlab.samplers import sample  # the training layer may use samplers; couplings/ may not

        field = self._field(name, self.module(name, ema=True))
        grid = torch.linspace(0.0, 1.0, self.steps + 1, dtype=torch.float64)
        if name == "backward":
            grid = grid.flip(0)
        return sample(field, self.sampler, grid=grid, steps=None, x_init=x, generator=generator).x

    def _simulate_forward(self, x0: Tensor, *, generator: torch.Generator | None, cond: Any = None) -> Tensor:
        return self._simulate("forward", x0, generator)

    def _simulate_backward(self, x1: Tensor, *, generator: torch.Generator | None, cond: Any = None) -> Tensor:
        return self._simulate("backward", x1, generator)

    def pairs(self, batch: Any, *, generator: torch.Generator | None) -> CouplingSample:
        """The pairs the current phase trains on (first coupling in phase 0, simulated ones afterwards)."""
        name = self.direction()
        if self.phase > 0:
            return self._pairers[name].sample(batch, generator=generator)
        pair = self.coupling.sample(batch, generator=generator)
        if self.first_coupling == "ref":
            x1 = pair.x0 + self.sigma * randn_like_per_sample(pair.x0, generator=generator)
            return CouplingSample(x0=pair.x0, x1=x1, cond=pair.cond, mask=pair.mask)
        return pair

    def regression(self, name: str, net: Callable[..., Tensor], pair: CouplingSample,
                   generator: torch.Generator | None) -> Tensor:
        """``E ½|net(x_t, t) − target|²`` with DSBM's forward or backward target on the Brownian bridge."""
        x0, x1 = pair.x0, pair.x1
        t = sample_times(x1.shape[0], eps=self.t_eps, generator=generator, device=x1.device)
        path = self.interpolant.sample(x0, x1, t, generator=generator)
        tt = path.t.to(x1.dtype).reshape(-1, *([1] * (x1.ndim - 1)))
        target = (x1 - path.x_t) / (1 - tt) if name == "forward" else (x0 - path.x_t) / tt
        if self.autocast is None:
            pred = net(path.x_t, path.t.to(x1.dtype))
        else:
            with self.autocast():
                pred = net(path.x_t, path.t.to(x1.dtype))
        return 0.5 * (pred.to(x1.dtype) - target).pow(2).flatten(1).sum(1).mean()

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """Advance the phase at a boundary, draw this phase's pairs, regress the phase's network."""
        self.phase = step // self.phase_steps
        name = self.direction()
        pair = self.pairs(batch, generator=generator)
        loss = self.regression(name, self.module(name), pair, generator)
        check_finite(loss, name="DSBM training loss")
        return LossOutput(loss=loss, batch_size=int(pair.x1.shape[0]), trained=(name,),
                          logs={"phase": float(self.phase), "direction": 1.0 if name == "forward" else -1.0})

    def state_dict(self) -> dict[str, Any]:
        """``{"phase": p}`` (the networks and their EMAs are the Trainer's)."""
        return {"phase": self.phase}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the phase.

        Raises:
            ValueError: If ``state`` lacks ``phase``.
        """
        if "phase" not in state:
            raise ValueError(f"DSBM objective state is missing 'phase'; got {sorted(state)}")
        self.phase = int(state["phase"])


class _DataOnly(Coupling):
    """Wraps the run's coupling so that labels in a batch are dropped before pairing."""

    def __init__(self, base: Coupling, dataset: Any) -> None:
        self.base, self.dataset = base, dataset

    def sample(self, batch: object, *, generator: torch.Generator | None = None) -> CouplingSample:
        data, _ = split_labels(batch, self.dataset)
        return self.base.sample(data, generator=generator)


class DSBMObjective(DSBM):
    """:class:`DSBM` built from a run config (``objective: {name: dsbm, phase_steps: ..., ...}``).

    The run's network is the forward network; the backward one is a fresh copy of the same architecture
    (re-initialised). The path must be ``brownian_bridge`` (σ read from it); the coupling supplies real
    ``(x0, x1)``.

    Args:
        config: Run config.
        components: Built components.
        **kwargs: :class:`DSBM` options (``phase_steps``, ``first``, ``first_coupling``, ``sampler``, ``steps``).
    """

    def __init__(self, config: RunConfig, components: Components, **kwargs: Any) -> None:
        if components.needs_labels:
            raise ValueError("objective 'dsbm' trains unconditional drifts; remove num_classes from the model")
        sigma = _sigma_of(components.interpolant)
        backward = copy.deepcopy(components.net)
        for m in backward.modules():
            if hasattr(m, "reset_parameters") and m is not backward:
                m.reset_parameters()
        self.config, self.components = config, components
        kwargs.setdefault("t_eps", config.train.t_eps)
        super().__init__(components.net, backward, sigma=sigma,
                         coupling=_DataOnly(components.coupling, components.split.train), **kwargs)


register_objective("dsbm", DSBMObjective)
