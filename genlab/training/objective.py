"""The training objective shared by every interpolant, coupling and prediction kind.

One evaluation: pair the batch with the coupling, draw times, sample the path, evaluate the Field and take the
interpolant's quadratic loss (``Interpolant.loss``, reference/interpolants.md §1.3) of the Field's kind. The
coupling's mask (inpainting) restricts the loss to the generated pixels; the EDM preconditioner brings its
loss weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from genlab.training.components import Components, make_cond, split_labels
from genlab.training.config import RunConfig
from genlab.training.precond import edm_loss_weight
from genlab.utils import check_finite

__all__ = ["LossOutput", "Objective", "sample_times"]


def sample_times(
    n: int,
    *,
    law: str = "uniform",
    eps: float = 1e-3,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Training times in ``[eps, 1 − eps]`` (float64).

    Args:
        n: Number of times.
        law: ``"uniform"``, or ``"logit_normal"`` (``sigmoid(N(mean, std²))``, Esser et al. 2024, §3.1).
        eps: Distance kept from both ends.
        mean: Logit-normal mean.
        std: Logit-normal std.
        generator: Random generator (draws happen on its device).
        device: Device of the result.

    Returns:
        ``(n,)`` float64 times.
    """
    gdev = generator.device if generator is not None else device
    if law == "uniform":
        u = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64)
    elif law == "logit_normal":
        u = torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=gdev, dtype=torch.float64))
    else:
        raise ValueError(f"unknown time law {law!r}; choose 'uniform' or 'logit_normal'")
    return (eps + (1.0 - 2.0 * eps) * u).to(device if device is not None else u.device)


@dataclass
class LossOutput:
    """One loss evaluation.

    Attributes:
        loss: Scalar loss (differentiable).
        batch_size: Number of path samples it averages (doubled with antithetic pairs).
    """

    loss: Tensor
    batch_size: int


def _twice(x: Any) -> Any:
    if isinstance(x, Tensor):
        return torch.cat([x, x])
    if isinstance(x, dict):
        return {k: _twice(v) for k, v in x.items()}
    return x


class Objective:
    """``L(θ) = E_{(x0,x1)~π, t, z} w(t)·½|f_θ(x_t, t) − target_kind|²`` for the run's components.

    Args:
        config: Run config (``train.t_sampling``, ``t_eps``, ``antithetic``, ``model.precond``).
        components: Built components (interpolant, coupling, kind, dataset for label lookup).
    """

    def __init__(self, config: RunConfig, components: Components) -> None:
        self.config = config
        self.components = components

    def __call__(
        self,
        model: nn.Module | Callable[..., Tensor],
        batch: Any,
        *,
        generator: torch.Generator | None,
        antithetic: bool | None = None,
        autocast: Callable[[], Any] | None = None,
    ) -> LossOutput:
        """Evaluate the loss of ``model`` (a Field, possibly DDP-wrapped) on one data batch.

        Args:
            model: Called as ``model(x_t, t, cond)``; returns the prediction of ``components.kind``.
            batch: A batch of the training dataset (already on the device).
            generator: Generator for the coupling, the times and the path noise.
            antithetic: Override ``train.antithetic``.
            autocast: Context-manager factory wrapped around the model call (mixed precision).

        Returns:
            :class:`LossOutput`.
        """
        comp, tcfg = self.components, self.config.train
        anti = tcfg.antithetic if antithetic is None else antithetic
        data, labels = split_labels(batch, comp.split.train)
        if not comp.needs_labels:
            labels = None
        pair = comp.coupling.sample(data, generator=generator)
        x1 = pair.x1
        t = sample_times(
            x1.shape[0],
            law=tcfg.t_sampling,
            eps=tcfg.t_eps,
            mean=tcfg.t_mean,
            std=tcfg.t_std,
            generator=generator,
            device=x1.device,
        )
        path = comp.interpolant.sample(pair.x0, x1, t, generator=generator, antithetic=anti)
        cond = make_cond(comp.interpolant, pair, labels)
        mask = pair.mask
        if anti:
            cond, mask = _twice(cond), _twice(mask)
        if autocast is None:
            pred = model(path.x_t, path.t, cond)
        else:
            with autocast():
                pred = model(path.x_t, path.t, cond)
        weight = None
        if self.config.model.precond == "edm":
            weight = edm_loss_weight(
                comp.interpolant, path.t, path.x_t, sigma_data=self.config.model.sigma_data
            )
        loss_mask = None if mask is None else (1.0 - mask.to(path.x_t.dtype)).expand_as(path.x_t)
        loss = comp.interpolant.loss(pred.to(path.x_t.dtype), path, comp.kind, weight=weight, mask=loss_mask)
        check_finite(loss, name="training loss")
        return LossOutput(loss=loss, batch_size=int(path.x_t.shape[0]))
