"""The hierarchical-VAE ELBO as a training objective (``objective: {name: hvae}``), and loading a trained HVAE.

The one :class:`~genlab.training.trainer.Trainer` trains, checkpoints and resumes it like any objective. Two
VDVAE training guards (Child, ICLR 2021, §4 and its code ``train.py``):

* **KL warm-up**: the KL term is weighted by ``min(1, (step + 1)/kl_warmup)`` (0 = off). Bits/dim and the logged
  ELBO always use the full KL.
* **Gradient-skip guard**: the gradient norm is measured on this step's gradients; if it is not finite or exceeds
  ``skip_threshold`` (or the loss is not finite), the HVAE's update is skipped — its optimiser, LR schedule and EMA
  do not advance. The Trainer steps only the modules a loss names (:class:`~genlab.training.objective.LossOutput`
  ``trained``), so a skipped step names a parameter-free-in-effect module, ``skip_guard`` (one scalar parameter
  that only counts as "trained" on skipped steps and never touches the model), instead of ``model``. The skip
  counter is the objective's checkpointed state.

The gradients are computed once with :func:`torch.autograd.grad`; the returned loss is a surrogate whose value is
the ELBO loss and whose gradient is those gradients (no second backward through the network). Under DDP the skip
decision is per rank (only single-process training is tested).

The HVAE has no :class:`~genlab.models.Field`: :meth:`HVAEObjective.fields` is empty, so configs set no
``sample_every``/``eval_every``; use :func:`load_hvae` and :meth:`genlab.models.HVAE.sample`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.models import Field
from genlab.models.hvae import HVAE
from genlab.training.checkpoint import CheckpointManager
from genlab.training.components import Components, split_labels
from genlab.training.config import RunConfig, load_config
from genlab.training.objective import LossOutput, ObjectiveBase, register_objective

__all__ = ["HVAEObjective", "LoadedHVAE", "load_hvae"]


class _SkipGuard(nn.Module):
    """The module a skipped step "trains" (one scalar that receives a zero gradient)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))


class HVAEObjective(ObjectiveBase):
    """Negative ELBO per dimension of an :class:`~genlab.models.HVAE` (``model: {name: hvae}``).

    Args:
        config: Run config.
        components: Built components (``components.net`` must be an :class:`~genlab.models.HVAE`).
        kl_warmup: Steps of linear KL warm-up (0: none).
        skip_threshold: Skip the update when the gradient norm exceeds this (``None``: skip only on NaN/inf).

    Raises:
        TypeError: If the run's network is not an HVAE.
        ValueError: For a negative warm-up or non-positive threshold.
    """

    module_name = "model"

    def __init__(self, config: RunConfig, components: Components, *, kl_warmup: int = 0,
                 skip_threshold: float | None = 400.0) -> None:
        if not isinstance(components.net, HVAE):
            raise TypeError(f"objective 'hvae' trains a genlab HVAE; the run's model is "
                            f"{type(components.net).__name__}; set model: {{name: hvae}}")
        if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
            raise ValueError(f"objective.kl_warmup must be an int >= 0 (steps); got {kl_warmup!r}")
        if skip_threshold is not None and not (isinstance(skip_threshold, (int, float))
                                               and math.isfinite(skip_threshold) and skip_threshold > 0):
            raise ValueError(f"objective.skip_threshold must be a float > 0 or null; got {skip_threshold!r}")
        self.config = config
        self.components = components
        self.kl_warmup = int(kl_warmup)
        self.skip_threshold = None if skip_threshold is None else float(skip_threshold)
        self.guard = _SkipGuard()
        self.n_skipped = 0

    def modules(self) -> dict[str, nn.Module]:
        """``{"model": the HVAE, "skip_guard": the skip module}``."""
        return {self.module_name: self.components.net, "skip_guard": self.guard}

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        """None: an HVAE is sampled with :meth:`HVAE.sample`, not through a Field."""
        return {}

    def kl_weight(self, step: int) -> float:
        """KL warm-up weight at optimiser step ``step``."""
        return 1.0 if self.kl_warmup == 0 else min(1.0, (step + 1) / self.kl_warmup)

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """Negative ELBO per dimension (KL weighted by the warm-up) with the gradient-skip guard."""
        data, _ = split_labels(batch, self.components.split.train)
        net = self.module(self.module_name)
        if self.autocast is None:
            out = net(data, generator=generator)
        else:
            with self.autocast():
                out = net(data, generator=generator)
        dims = data[0].numel()
        loss = ((out.nll + self.kl_weight(step) * out.kl.sum(1)) / dims).mean()
        params = [p for p in self.components.net.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        sq = sum((g.detach().float() ** 2).sum() for g in grads if g is not None)
        norm = float(torch.sqrt(torch.as_tensor(sq)))
        skip = not (math.isfinite(float(loss.detach())) and math.isfinite(norm)) or (
            self.skip_threshold is not None and norm > self.skip_threshold)
        logs = {"bpd": float(out.bpd.detach().mean()), "kl": float(out.kl.detach().sum(1).mean()),
                "nll": float(out.nll.detach().mean()),
                "grad_norm_pre": norm, "skipped": float(self.n_skipped + int(skip))}
        if skip:
            self.n_skipped += 1
            value = torch.nan_to_num(loss.detach(), nan=0.0, posinf=0.0, neginf=0.0)
            surrogate = value + 0.0 * self.module("skip_guard").weight
            return LossOutput(loss=surrogate, batch_size=int(data.shape[0]), trained=("skip_guard",), logs=logs)
        inner = sum((p * g).sum() for p, g in zip(params, grads) if g is not None)
        surrogate = loss.detach() + inner - inner.detach()
        return LossOutput(loss=surrogate, batch_size=int(data.shape[0]), trained=(self.module_name,), logs=logs)

    def state_dict(self) -> dict[str, Any]:
        """``{"n_skipped": count}``."""
        return {"n_skipped": self.n_skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the skip counter."""
        self.n_skipped = int(state.get("n_skipped", 0))


register_objective("hvae", HVAEObjective)


@dataclass
class LoadedHVAE:
    """A trained HVAE read back from a run folder.

    Attributes:
        model: The HVAE (EMA or raw weights), in eval mode, gradients off.
        config: The run's resolved config.
        step: Checkpoint step.
        checkpoint: Checkpoint path.
        n_skipped: Updates skipped by the gradient guard.
    """

    model: HVAE
    config: RunConfig
    step: int
    checkpoint: Path
    n_skipped: int


def load_hvae(run: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> LoadedHVAE:
    """Load the HVAE of a run trained with ``objective: {name: hvae}`` (latest intact checkpoint).

    Args:
        run: Run folder.
        ema: EMA weights (else the raw ones).
        device: Device.

    Returns:
        :class:`LoadedHVAE`.

    Raises:
        FileNotFoundError: If the folder has no checkpoint.
        TypeError: If the run does not hold an HVAE.
    """
    from genlab.models import build_network
    from genlab.training.trainer import checkpoint_key

    run_dir = Path(run)
    manager = CheckpointManager(run_dir / "checkpoints")
    if not run_dir.is_dir() or (manager.latest() is None and not (manager.folder / "latest").is_file()):
        raise FileNotFoundError(f"no checkpoint in {str(run_dir / 'checkpoints')!r}; train the run first")
    found = manager.load_latest(map_location="cpu")
    state = found.state
    config = load_config(state["config"])
    net = build_network(state["network"])
    if not isinstance(net, HVAE):
        raise TypeError(f"run {str(run_dir)!r} holds a {type(net).__name__}, not an HVAE")
    key = checkpoint_key("ema" if ema else "model", "model")
    weights = state[key]["weights"] if ema else state[key]
    net.load_state_dict(weights)
    net.to(device).eval().requires_grad_(False)
    return LoadedHVAE(model=net, config=config, step=int(state["step"]), checkpoint=Path(found.path),
                      n_skipped=int(state.get("objective", {}).get("n_skipped", 0)))

