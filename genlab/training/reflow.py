"""Reflow as a stateful objective: re-pair with a frozen teacher (a snapshot of the EMA model) through an
injected :class:`~genlab.couplings.ModelCoupling`.

Liu, Gong & Liu (ICLR 2023, "Flow Straight and Fast", Algorithm 1) train the ``(k+1)``-rectified flow on pairs
``(Z0, Z1) = (X0, ODE_k(X0))`` drawn by simulating the ``k``-th flow. Here round 0 trains on the run's coupling
(the 1-rectified flow); at the start of every later round the EMA weights are copied into a frozen teacher, and
each batch is paired by running the teacher's probability-flow ODE from fresh source draws with a registered
sampler. The round counter and the teacher weights are the objective's state, so a reflow run checkpoints and
resumes bit for bit through the one Trainer.

Deviation from the paper (said plainly): the pairs are simulated online, one batch at a time from the current
teacher, instead of being generated once into a fixed data set before each round; the law of the pairs is the
same.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from genlab.couplings import ModelCoupling
from genlab.training.components import Components, make_field
from genlab.training.config import RunConfig
from genlab.training.objective import Autocast, InterpolantObjective, LossOutput, register_objective

__all__ = ["ReflowObjective"]


class ReflowObjective(InterpolantObjective):
    """The interpolant regression on pairs re-drawn by a frozen teacher, refreshed every ``round_steps`` steps.

    Args:
        config: Run config.
        components: Built components (Gaussian- or data-source path without a known source or labels).
        sampler: Registered sampler that simulates the teacher (an ODE sampler keeps the pairs deterministic
            given ``x0``).
        steps: Grid steps of that simulation.
        round_steps: Optimiser steps per round; round ``k`` starts at step ``k·round_steps``.

    Raises:
        ValueError: For a bridge path (known source), a class-conditional network, or non-positive sizes.
    """

    def __init__(
        self,
        config: RunConfig,
        components: Components,
        *,
        sampler: str = "euler",
        steps: int = 8,
        round_steps: int = 1000,
    ) -> None:
        super().__init__(config, components)
        if components.interpolant.conditional_source or components.needs_labels:
            raise ValueError(
                "objective 'reflow' re-pairs unconditional generation; this run has a known-source (bridge) path "
                "or a class-conditional network; use objective: {name: interpolant}"
            )
        for name, value in (("steps", steps), ("round_steps", round_steps)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"objective.{name} must be a positive integer, got {value!r}")
        self.sampler = str(sampler)
        self.steps = int(steps)
        self.round_steps = int(round_steps)
        self.round = 0
        self.teacher = copy.deepcopy(components.net).eval().requires_grad_(False)
        self.base_coupling = components.coupling
        self.model_coupling = ModelCoupling(self._simulate, base=components.coupling)

    def bind(
        self,
        *,
        train: Mapping[str, nn.Module],
        ema: Mapping[str, nn.Module],
        autocast: Autocast | None = None,
    ) -> None:
        """Store the modules and move the teacher next to the trained network."""
        super().bind(train=train, ema=ema, autocast=autocast)
        param = next(self.components.net.parameters())
        self.teacher.to(device=param.device)

    def _simulate(self, x0: Tensor, *, generator: torch.Generator | None, cond: Any | None = None) -> Tensor:
        """Run the teacher's Field from ``x0`` (the pairing function injected into the coupling)."""
        from genlab.samplers import sample  # the training layer may use samplers; couplings/ may not

        if cond is not None:
            raise ValueError(
                "objective 'reflow' needs a coupling without conditioning (cond); use 'independent'"
            )
        teacher = make_field(self.teacher, self.config, self.components)
        return sample(teacher, self.sampler, steps=self.steps, x_init=x0, generator=generator).x

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """Refresh the teacher at a round boundary, then the regression on this round's pairs."""
        k = step // self.round_steps
        if k != self.round:
            self.teacher.load_state_dict(self.module(self.module_name, ema=True).state_dict())
            self.round = k
        self.coupling = self.base_coupling if self.round == 0 else self.model_coupling
        out = super().loss(batch, step=step, generator=generator)
        out.logs["round"] = float(self.round)
        return out

    def state_dict(self) -> dict[str, Any]:
        """``{"round": k, "teacher": teacher weights}``."""
        return {"round": self.round, "teacher": self.teacher.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the round and the teacher weights.

        Raises:
            ValueError: If ``state`` lacks ``round`` or ``teacher``.
        """
        missing = {"round", "teacher"} - set(state)
        if missing:
            raise ValueError(f"reflow objective state is missing {sorted(missing)}")
        self.round = int(state["round"])
        self.teacher.load_state_dict(state["teacher"])


register_objective("reflow", ReflowObjective)
