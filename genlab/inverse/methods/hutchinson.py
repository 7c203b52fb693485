"""Hutchinson estimators of ``Tr ∇² log p_t(z) = Tr J_s(z)`` (the trace term of STSL's surrogate loss).

For a probe ``ε`` with ``E[εεᵀ] = I`` (Gaussian or Rademacher), ``E[εᵀ J_s ε] = Tr J_s`` (Hutchinson 1989). Three
estimators (``reference/inverse.md`` §1.6):

* ``"fd_unit"`` (STSL paper, Eq. 4): ``εᵀ(s(z + ε) − s(z))`` — a finite difference with a unit-scale probe; it
  equals ``εᵀJ_sε`` only to first order (biased when the score is curved on the probe's scale);
* ``"fd_delta"``: ``εᵀ(s(z + δε) − s(z))/δ`` — the same with a small step δ (bias O(δ));
* ``"jvp"``: exact ``εᵀ J_s ε``, computed as ``εᵀ(J_sᵀε)`` with a ``create_graph`` VJP (reverse-over-reverse;
  the same number as the forward-mode ``εᵀ(J_s ε)``), so its gradient needs a double backward.

Each returns one estimate per sample ``(B,)``; every one is differentiable w.r.t. ``z`` when ``z`` requires grad.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genlab.utils import RandomSource, randn_like_per_sample

__all__ = ["ESTIMATORS", "PROBES", "draw_probe", "hutchinson_trace"]

ESTIMATORS: tuple[str, ...] = ("fd_unit", "fd_delta", "jvp")
PROBES: tuple[str, ...] = ("gaussian", "rademacher")


def draw_probe(like: Tensor, kind: str = "gaussian", *,
               generator: RandomSource = None) -> Tensor:
    """A probe with identity second moment, drawn per sample.

    Args:
        like: Tensor giving shape, dtype and device.
        kind: ``"gaussian"`` (N(0, I)) or ``"rademacher"`` (±1).
        generator: Per-sample streams, a generator or ``None``.

    Returns:
        The probe.
    """
    if kind not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {kind!r}")
    eps = randn_like_per_sample(like.detach(), generator=generator)
    return eps if kind == "gaussian" else torch.where(eps >= 0, torch.ones_like(eps), -torch.ones_like(eps))


def hutchinson_trace(
    score_fn: Callable[[Tensor], Tensor],
    z: Tensor,
    probe: Tensor,
    *,
    estimator: str = "fd_unit",
    delta: float = 1e-3,
    score_z: Tensor | None = None,
) -> Tensor:
    """One-probe estimate of ``Tr J_s(z)`` per sample.

    Args:
        score_fn: ``z ↦ s(z)`` (differentiable).
        z: Point ``(B, ...)``; must require grad for ``"jvp"``.
        probe: Probe ``ε`` of ``z``'s shape.
        estimator: ``"fd_unit"``, ``"fd_delta"`` or ``"jvp"``.
        delta: Step of ``"fd_delta"``.
        score_z: ``s(z)`` if already computed (shares the network evaluation; must be attached to ``z``'s graph
            for ``"jvp"``).

    Returns:
        ``(B,)`` estimates.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"trace_estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if probe.shape != z.shape:
        raise ValueError(f"probe shape {tuple(probe.shape)} differs from z's {tuple(z.shape)}")
    s_z = score_fn(z) if score_z is None else score_z
    if estimator == "jvp":
        if not z.requires_grad or not s_z.requires_grad:
            raise ValueError("the 'jvp' estimator differentiates s(z): pass z with requires_grad=True")
        (jt_eps,) = torch.autograd.grad(s_z, z, grad_outputs=probe, create_graph=True)
        return (probe * jt_eps).flatten(1).sum(1)
    step = 1.0 if estimator == "fd_unit" else float(delta)
    if not step > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    diff = score_fn(z + step * probe) - s_z
    return (probe * diff).flatten(1).sum(1) / step
