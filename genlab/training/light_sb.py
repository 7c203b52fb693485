r"""Light Schrödinger Bridge as a training objective (``objective: {name: light_sb}``).

Korotin, Gushchin & Burnaev (ICLR 2024, "Light Schrödinger Bridge", eq. 14): the Gaussian-mixture adjusted
potential :class:`~genlab.models.light_sb.LightSB` is fitted by minimising

.. math::
    L(θ) = E_{x_0 \sim p_0} \log c_θ(x_0) − E_{x_1 \sim p_1} \log v_θ(x_1)

on unpaired minibatches (no simulation, no pairs: each batch's ``x0`` and ``x1`` are only used through their
marginals). The trained potential gives the SB drift as a genlab Field (kind ``drift_fwd`` on
``BrownianBridge(√ε)``, :func:`~genlab.models.light_sb.light_sb_field`), so ``genlab sample`` integrates it with
any registered SDE sampler (``euler_maruyama``, ``sde_heun``) from held-out source points.

Config (see ``configs/moons_to_8gaussians_lightsb.yaml``):

.. code-block:: yaml

    data: {name: unpaired, source: {name: moons, n: 10000}, target: {name: eight_gaussians, n: 10000}}
    interpolant: {name: brownian_bridge, sigma: 0.316227766}      # σ = √ε
    coupling: {name: paired}                                        # the rows' independent (x0, x1)
    model: {name: light_sb, kind: drift_fwd, eps: 0.05, n_components: 50, s_init: 0.1}   # eps = ε/2
    objective: {name: light_sb}
    train: {lr: 1.0e-2, grad_clip: null, ema_decay: 0.0, ...}
    sample: {sampler: euler_maruyama, steps: 100}

ε is read from the path (``ε = σ²``); the model section's ``eps`` is genlab's SDE coefficient ``ε_SI = ε/2`` of
the drift kinds and must agree. Paper defaults (App. C): Adam, batch 128, no gradient clipping, no EMA; on the
EOT benchmark ``K = 50``, lr ``1e-3 / 3e-3 / 6e-2`` for ``ε = 0.1 / 1 / 10`` (``LIGHT_SB_LR``), ``S`` initialised
to ``I``. ``r_k`` starts at ``K`` training targets (``init_means``, the paper's ``init_r_by_samples``).
Deviation said plainly: the Trainer's optimiser is AdamW (with the config's ``weight_decay``, 0 by default,
where it equals Adam).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from genlab.models import Field, LightSB, light_sb_field, network_config
from genlab.training.components import Components, split_labels
from genlab.training.config import RunConfig
from genlab.training.dsbm import _sigma_of
from genlab.training.objective import Autocast, LossOutput, ObjectiveBase, register_objective
from genlab.utils import check_finite

__all__ = ["LightSBObjective"]


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


class LightSBObjective(ObjectiveBase):
    """Fit a :class:`LightSB` potential on a run's unpaired ``(x0, x1)`` batches (see the module docstring).

    One module, ``"model"`` (the run's ``LightSB``); no state of its own. Images are flattened (``model.dim``
    must then be given: the product of the per-sample shape).

    Args:
        config: Run config (``model: {name: light_sb, kind: drift_fwd, eps: ε/2, ...}``, ``brownian_bridge`` path).
        components: Built components.
        init_means: Set ``r_k`` to ``K`` training targets drawn with ``train.seed`` (paper's initialisation).

    Raises:
        ValueError: For a network that is not ``light_sb``, a kind other than ``drift_fwd``, a ``model.eps`` that
            is not ``σ²/2``, a path that is not a Brownian bridge, labels, or a ``dim`` that does not fit the data.
    """

    module_name: str = "model"

    def __init__(self, config: RunConfig, components: Components, *, init_means: bool = True) -> None:
        if not isinstance(init_means, bool):
            raise TypeError(f"objective.init_means must be a bool; got {init_means!r}")
        net = components.net
        if not isinstance(net, LightSB):
            raise ValueError(  # noqa: TRY004 - a config error (model.name), reported like the others
                f"objective 'light_sb' trains a Light SB potential but model.name builds a {type(net).__name__}; set "
                "model: {name: light_sb, kind: drift_fwd, eps: <ε/2>, n_components: <K>}"
            )
        sigma = _sigma_of(components.interpolant)
        eps = sigma**2
        mcfg = config.model
        if mcfg.kind != "drift_fwd":
            raise ValueError(f"model.kind: Light SB's Field is the forward SB drift; set kind: drift_fwd (got {mcfg.kind})")
        if mcfg.eps is None or not math.isclose(float(mcfg.eps), eps / 2, rel_tol=1e-6):
            raise ValueError(
                f"model.eps: the SB drift of dX = g dt + √ε dW has genlab SDE coefficient ε/2 = {eps / 2:g} for the "
                f"path's ε = σ² = {eps:g}; got model.eps = {mcfg.eps!r}"
            )
        if components.needs_labels:
            raise ValueError("objective 'light_sb' is unconditional; remove num_classes from the model")
        dim = math.prod(components.data_shape)
        if net.dim != dim:
            raise ValueError(
                f"model.dim={net.dim} but the data has {dim} entries per sample (shape {components.data_shape}); "
                f"set model.dim: {dim}"
            )
        if not math.isclose(net.eps, eps, rel_tol=1e-9):
            # the architecture takes ε from the path (the model section's eps is the SDE coefficient ε/2)
            net = LightSB(**{**net.config, "eps": eps}).to(next(net.parameters()).dtype)  # type: ignore[arg-type]
            components.net = net
            components.network = network_config(net)
        self.config, self.components, self.eps = config, components, eps
        if init_means:
            self._init_means(net, config.train.seed)

    def _init_means(self, net: LightSB, seed: int) -> None:
        data, _ = split_labels(self.components.split.train[:], self.components.split.train)
        x1 = data[-1] if isinstance(data, tuple) else data
        g = torch.Generator().manual_seed(int(seed))
        n, k = x1.shape[0], net.n_components
        idx = torch.randperm(n, generator=g)[:k] if n >= k else torch.randint(0, n, (k,), generator=g)
        net.init_means(_flat(x1[idx]).to(net.r))

    def modules(self) -> dict[str, nn.Module]:
        """``{"model": LightSB}``."""
        return {self.module_name: self.components.net}

    def bind(
        self,
        *,
        train: Mapping[str, nn.Module],
        ema: Mapping[str, nn.Module],
        autocast: Autocast | None = None,
    ) -> None:
        """Store the modules (mixed precision is not used: the mixture's log-sum-exps stay in full precision)."""
        super().bind(train=train, ema=ema, autocast=None)

    def fields(self, *, ema: bool = True) -> dict[str, Field]:
        """``{"model": light_sb_field(...)}``: the SB drift (``drift_fwd`` on ``BrownianBridge(√ε)``)."""
        net = self.module(self.module_name, ema=True) if ema else self.components.net
        return {self.module_name: light_sb_field(net)}  # type: ignore[arg-type]

    def loss(self, batch: Any, *, step: int, generator: torch.Generator | None) -> LossOutput:
        """``mean log c_θ(x0) − mean log v_θ(x1)`` on the batch's source and target rows (``step`` unused)."""
        data, _ = split_labels(batch, self.components.split.train)
        pair = self.components.coupling.sample(data, generator=generator)
        model = self.module(self.module_name)
        p = next(self.components.net.parameters())
        loss = model(_flat(pair.x0).to(p.dtype), _flat(pair.x1).to(p.dtype))
        check_finite(loss, name="Light SB training loss")
        return LossOutput(loss=loss, batch_size=int(pair.x1.shape[0]))


register_objective("light_sb", LightSBObjective)
