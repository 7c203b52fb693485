"""The per-step pieces of the training loop, written for low overhead (issue 14, "a faster training loop").

Profiling the 2-D MLP loop of ``experiments/bench_training_throughput.py`` (one thread, batch 512,
``cProfile``) showed that the per-sample noise is no longer the bottleneck (the vectorised Box–Muller draw of
:func:`genlab.utils.randn_per_sample` costs ≈ 0.05 ms per step against 0.006 ms for one ``torch.randn``), while
the bookkeeping around the network was: PyTorch's default AdamW on CPU runs its single-tensor Python loop
(≈ 0.66 ms per step for the 141k-parameter MLP; the fused kernel takes ≈ 0.27 ms), ``clip_grad_norm_`` spends
most of its ≈ 0.2 ms in generic grouping code, the EMA walked ``named_parameters()`` twice and updated tensor by
tensor, and ``module.train()`` walked every submodule each step. This module holds the replacements; each one
computes exactly what it replaces (the clip bit for bit; the fused AdamW is the same algorithm, its rounding may
differ from the loop in the last bits). A second pass (paired block-interleaved timing against flow_matching's
loop, see the benchmark's results) found ≈ 40 µs per step in ``Optimizer.step``'s own bookkeeping around the
fused kernel: :func:`optimizer_step` calls the kernel itself, bit for bit ``AdamW.step``; the EMA
(:class:`genlab.training.ema.EMA`) is one ``lerp`` pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "ADAMW_IMPLS",
    "TrainMode",
    "can_step_directly",
    "clear_grads",
    "clip_grad_norm",
    "make_adamw",
    "optimizer_step",
]

#: Accepted values of ``make_adamw(impl=...)``.
ADAMW_IMPLS = ("auto", "fused", "foreach", "loop")


def make_adamw(
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 0.01,
    impl: Literal["auto", "fused", "foreach", "loop"] = "auto",
) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` with the fastest implementation the parameters' device supports.

    Args:
        params: Parameters to optimise.
        lr: Learning rate.
        betas: Adam's ``(β₁, β₂)``.
        weight_decay: Decoupled weight decay.
        impl: ``"auto"`` (default): the fused kernel when PyTorch has one for the parameters' device and dtype
            (CPU, CUDA, MPS, XPU in torch ≥ 2.4), else the multi-tensor (``foreach``) implementation;
            ``"fused"`` (error if unsupported), ``"foreach"``, or ``"loop"`` (PyTorch's single-tensor loop,
            its CPU default).

    Returns:
        The optimiser.

    Raises:
        ValueError: If ``impl`` is unknown, or ``"fused"`` is not supported for these parameters.
    """
    if impl not in ADAMW_IMPLS:
        raise ValueError(f"impl must be one of {ADAMW_IMPLS}, got {impl!r}")
    params = list(params)
    kwargs = {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay}
    if impl == "loop":
        return torch.optim.AdamW(params, foreach=False, **kwargs)
    if impl == "foreach":
        return torch.optim.AdamW(params, foreach=True, **kwargs)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError) as err:
        if impl == "fused":
            raise ValueError(f"fused AdamW is not available for these parameters ({err}); use impl='auto'") from err
        return torch.optim.AdamW(params, foreach=True, **kwargs)


@torch.no_grad()
def clip_grad_norm(params: Sequence[nn.Parameter], max_norm: float) -> Tensor:
    """Global 2-norm of the gradients of ``params``, then scale them to at most ``max_norm``.

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` (per-tensor norms by
    ``torch._foreach_norm``, the norm of their stack, gradients multiplied by ``min(1, max_norm / (norm +
    1e-6))``), bit for bit when all gradients share one device and dtype (otherwise it calls PyTorch's
    function); a multiplication by exactly 1 (``max_norm = inf``, or a norm below ``max_norm``) is skipped.

    Args:
        params: Parameters (those without a gradient are ignored).
        max_norm: Maximal norm (``math.inf``: measure only).

    Returns:
        The norm before clipping (0-d tensor on the gradients' device).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    first = grads[0]
    if any(g.device != first.device or g.dtype != first.dtype or g.is_sparse for g in grads):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    norms = torch._foreach_norm(grads, 2.0)
    total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
    # multiplying by exactly 1 changes nothing: skip the pass over the gradients then (the caller reads the norm
    # as a float anyway, so reading it here adds no device synchronisation). A norm clearly below max_norm gives a
    # factor of exactly 1 after the clamp (decided on the float, without the three scalar kernels); near the
    # threshold the factor is computed as PyTorch computes it.
    if math.isinf(max_norm) or float(total) < max_norm * (1.0 - 1e-4) - 1e-6:
        return total
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    if float(coef) != 1.0:
        torch._foreach_mul_(grads, coef)
    return total


class TrainMode:
    """Puts modules in training mode, checking a cached submodule list instead of walking the module tree.

    ``module.train()`` visits every submodule on each call; the loop calls it every step. This keeps the
    submodules of each module and calls ``train()`` only when one of them is not in training mode (an
    evaluation switched it), so the effect is that of calling ``train()`` every step.

    Args:
        modules: The modules to keep in training mode.
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.modules = list(modules)
        self._subs = [list(m.modules()) for m in self.modules]

    def __call__(self) -> None:
        """Ensure every module (and each submodule) is in training mode."""
        for i, (module, subs) in enumerate(zip(self.modules, self._subs)):
            if not all(s.training for s in subs):
                module.train()
                self._subs[i] = list(module.modules())


def clear_grads(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` for each optimiser, without its profiler bookkeeping.

    Args:
        optimizers: The optimisers whose parameters' gradients are dropped.
    """
    for opt in optimizers:
        if type(opt).zero_grad is not torch.optim.Optimizer.zero_grad:  # a subclass with its own zero_grad
            opt.zero_grad(set_to_none=True)
            continue
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = None


def optimizer_step(optimizer: torch.optim.Optimizer, *, direct: bool | None = None) -> None:
    """``optimizer.step()``, calling PyTorch's fused AdamW kernel directly where that is the same computation.

    ``torch.optim.Optimizer.step`` spends about as long in bookkeeping (the profiler's ``record_function``, the
    hook checks, rebuilding the per-parameter lists, grouping the tensors by device) as the fused kernel takes
    for a small network (≈ 40 µs of ≈ 125 µs per step for the 141k-parameter MLP of
    ``experiments/bench_training_throughput.py``). For a fused ``AdamW`` with one parameter group this calls
    ``torch._foreach_add_(steps, 1)`` and ``torch._fused_adamw_`` with the optimiser's own state tensors and
    current hyper-parameters: the two calls its ``step()`` makes, so the result is the same bit for bit
    (``tests/training/test_fastpath.py``). Everything else goes through ``optimizer.step()``: other optimisers,
    the first step (it creates the state), a parameter without a gradient or state, several devices or dtypes,
    sparse or complex tensors, amsgrad/maximize/capturable/differentiable, a tensor learning rate, registered
    step hooks, a ``step`` wrapped on the instance by anything but an LR scheduler (whose "step was called" flag
    is set as its wrapper would), and PyTorch versions without the kernel.

    Args:
        optimizer: The optimiser to step.
        direct: :func:`can_step_directly` of ``optimizer`` when the caller keeps it (the loop computes it once per
            optimiser); ``None``: checked here.
    """
    if direct is None:
        direct = can_step_directly(optimizer)
    if not direct or not _step_fused_adamw(optimizer):
        optimizer.step()


def can_step_directly(optimizer: Any) -> bool:
    """Whether :func:`optimizer_step` may call the fused AdamW kernel itself for ``optimizer`` (the checks that do
    not change between steps: a plain ``torch.optim.AdamW`` with ``fused=True``, one parameter group, real
    parameters, a PyTorch that has the kernel)."""
    if type(optimizer) is not torch.optim.AdamW or not hasattr(torch, "_fused_adamw_"):
        return False
    if len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    params = group["params"]
    return bool(
        params
        and group.get("fused")
        and not group.get("differentiable")
        and not any(torch.is_complex(p) for p in params)
    )


def _step_fused_adamw(opt: torch.optim.Optimizer) -> bool:
    """The fused AdamW update of ``opt`` by the kernel itself; ``False`` (nothing done) where it must not."""
    wrapped = opt.__dict__.get("step")  # an instance-level wrapper of step(): only an LR scheduler's is known
    if (
        len(opt.param_groups) != 1
        or opt._optimizer_step_pre_hooks
        or opt._optimizer_step_post_hooks
        or _global_step_hooks()
        or (wrapped is not None and not getattr(wrapped, "_wrapped_by_lr_sched", False))
    ):
        return False
    group = opt.param_groups[0]
    params: list[Tensor] = group["params"]
    state = opt.state
    grads, exp_avgs, exp_avg_sqs, steps = [], [], [], []
    first = params[0]
    for p in params:
        g = p.grad
        st = state.get(p)
        if g is None or not st or g.is_sparse or g.device != first.device or g.dtype != first.dtype:
            return False
        grads.append(g)
        exp_avgs.append(st["exp_avg"])
        exp_avg_sqs.append(st["exp_avg_sq"])
        steps.append(st["step"])
    lr = group["lr"]
    if isinstance(lr, Tensor) or group["amsgrad"] or group["maximize"] or group["capturable"]:
        return False
    beta1, beta2 = group["betas"]
    with torch.no_grad():
        torch._foreach_add_(steps, 1)
        torch._fused_adamw_(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=lr,
            beta1=float(beta1),
            beta2=float(beta2),
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
    if wrapped is not None:
        opt._opt_called = True  # what the scheduler's wrapper records (its first step() checks it)
    return True


def _global_step_hooks() -> bool:
    """Whether hooks were registered for every optimiser (``torch.optim.optimizer.register_optimizer_step_*``)."""
    from torch.optim import optimizer as _optim

    return bool(
        getattr(_optim, "_global_optimizer_pre_hooks", None) or getattr(_optim, "_global_optimizer_post_hooks", None)
    )
