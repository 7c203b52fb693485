"""The low-overhead training-step pieces (issue 14, faster loop) compute exactly what they replace."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genlab.training.ema import EMA
from genlab.training.fastpath import (
    TrainMode,
    can_step_directly,
    clear_grads,
    clip_grad_norm,
    make_adamw,
    optimizer_step,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.SiLU(), nn.Linear(16, 2))


@pytest.mark.parametrize("scale", [1e-3, 10.0])
@pytest.mark.parametrize("max_norm", [1.0, math.inf])
def test_clip_grad_norm_is_torch_bit_for_bit(scale: float, max_norm: float) -> None:
    net = _net()
    grads = [torch.randn_like(p) * scale for p in net.parameters()]
    for p, g in zip(net.parameters(), grads):
        p.grad = g.clone()
    ref = torch.nn.utils.clip_grad_norm_(list(net.parameters()), max_norm)
    ref_grads = [p.grad.clone() for p in net.parameters()]
    for p, g in zip(net.parameters(), grads):
        p.grad = g.clone()
    ours = clip_grad_norm(list(net.parameters()), max_norm)
    assert torch.equal(ours, ref)
    assert all(torch.equal(p.grad, r) for p, r in zip(net.parameters(), ref_grads))
    # the norm is sqrt(sum |g|^2) and the clipped norm is min(norm, max_norm)
    assert float(ours) == pytest.approx(math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads)), rel=1e-5)
    clipped = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in net.parameters()))
    assert clipped == pytest.approx(min(float(ours), max_norm), rel=1e-4)


def test_ema_update_is_the_lerp_of_the_ema_formula() -> None:
    """shadow <- d*shadow + (1-d)*theta, computed as one lerp pass (bit for bit the per-tensor lerp_, and equal
    to the mul/add form up to rounding); buffers are copied."""
    net = _net()
    ema = EMA(net, decay=0.9, warmup=True, power=1.0)
    shadow = {k: v.clone() for k, v in ema.module.state_dict().items()}
    mul_add = {k: v.clone() for k, v in ema.module.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(4):
        net.train()
        loss = net(torch.randn(8, 3)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        d = ema.update(net)
        assert d == min(0.9, 1.0 - (1.0 + step) ** -1.0)
        for name, p in net.named_parameters():
            shadow[name] = shadow[name].lerp_(p.detach(), 1.0 - d)
            mul_add[name] = mul_add[name].mul_(d).add_(p.detach(), alpha=1.0 - d)
        for name, b in net.named_buffers():
            shadow[name] = mul_add[name] = b.clone()
        for name, v in ema.module.state_dict().items():
            assert torch.equal(v, shadow[name]), name
            torch.testing.assert_close(v, mul_add[name], rtol=1e-6, atol=1e-7)
    first = EMA(net, decay=0.9)  # warm-up: the first update (d = 0) copies the weights exactly
    with torch.no_grad():
        for p in first.module.parameters():
            p.fill_(7.0)
    assert first.update(net) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(first.module.parameters(), net.parameters()))


def test_ema_cache_follows_replaced_parameters_and_a_new_model() -> None:
    net = _net()
    ema = EMA(net, decay=0.5, warmup=False)
    ema.update(net)
    net[0].weight = nn.Parameter(torch.ones_like(net[0].weight))  # a new tensor object: the pairing is rebuilt
    before = ema.module[0].weight.clone()
    ema.update(net)
    torch.testing.assert_close(ema.module[0].weight, before * 0.5 + 0.5, rtol=0, atol=1e-7)
    other = _net()
    with torch.no_grad():
        for p in other.parameters():
            p.fill_(2.0)
    w = ema.module[3].bias.clone()
    ema.update(other)  # another model object: paired afresh
    torch.testing.assert_close(ema.module[3].bias, w * 0.5 + 1.0, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="no parameter"):
        ema.update(nn.Linear(3, 2))


@pytest.mark.parametrize("impl", ["auto", "fused", "foreach", "loop"])
def test_make_adamw_implementations_agree_with_the_adamw_formula(impl: str) -> None:
    """One AdamW step from zero moments moves each weight by -lr*(sign(g) + wd*w) (up to eps), whatever impl."""
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float32))
    opt = make_adamw([p], lr=0.1, betas=(0.9, 0.999), weight_decay=0.01, impl=impl)
    p.grad = torch.tensor([0.3, -0.2, 1e-3])
    w0 = p.detach().clone()
    opt.step()
    expected = w0 * (1 - 0.1 * 0.01) - 0.1 * torch.sign(p.grad) * (p.grad.abs() / (p.grad.abs() + 1e-8))
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-6)
    group = opt.param_groups[0]
    if impl in ("auto", "fused"):
        assert group["fused"]  # CPU has the fused kernel in the pinned torch
    assert group["foreach"] is (True if impl == "foreach" else (False if impl == "loop" else None))


def test_make_adamw_rejects_an_unknown_impl() -> None:
    with pytest.raises(ValueError, match="impl must be one of"):
        make_adamw([nn.Parameter(torch.zeros(2))], lr=0.1, impl="fast")  # type: ignore[arg-type]


def test_train_mode_restores_training_after_eval_of_a_submodule() -> None:
    net = _net()
    mode = TrainMode([net])
    net[1].eval()
    mode()
    assert all(m.training for m in net.modules())
    net.eval()
    mode()
    assert all(m.training for m in net.modules())


def _adamw_run(direct: bool, *, hook: bool = False, steps: int = 6) -> tuple[list[torch.Tensor], dict, bool]:
    """``steps`` AdamW steps (fused, warm-up LR schedule) through optimizer_step or opt.step()."""
    net = _net()
    opt = make_adamw(net.parameters(), lr=0.05, weight_decay=0.1, impl="fused")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    if hook:
        opt.register_step_post_hook(lambda *_: None)
    direct_ok = can_step_directly(opt)
    gen = torch.Generator().manual_seed(3)
    for _ in range(steps):
        net.train()
        loss = net(torch.randn(8, 3, generator=gen)).square().mean()
        loss.backward()
        optimizer_step(opt, direct=direct_ok) if direct else opt.step()
        sched.step()
        clear_grads([opt])
    return [p.detach().clone() for p in net.parameters()], opt.state_dict(), direct_ok


@pytest.mark.parametrize("hook", [False, True])
def test_optimizer_step_equals_adamw_step_bit_for_bit(hook: bool) -> None:
    ref, ref_state, _ = _adamw_run(direct=False)
    ours, state, direct = _adamw_run(direct=True, hook=hook)
    assert direct  # a fused AdamW with one group takes the direct kernel call (a hook sends it back to step())
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))
    for i, st in ref_state["state"].items():
        assert float(state["state"][i]["step"]) == float(st["step"]) == 6.0
        assert torch.equal(state["state"][i]["exp_avg"], st["exp_avg"])
        assert torch.equal(state["state"][i]["exp_avg_sq"], st["exp_avg_sq"])


def test_optimizer_step_falls_back_to_step_where_it_must() -> None:
    p = nn.Parameter(torch.ones(3))
    sgd = torch.optim.SGD([p], lr=0.5)
    assert not can_step_directly(sgd)
    p.grad = torch.ones(3)
    optimizer_step(sgd)
    assert torch.equal(p.detach(), torch.full((3,), 0.5))
    assert not can_step_directly(make_adamw([p], lr=0.1, impl="foreach"))
    q = nn.Parameter(torch.zeros(2))
    fused = torch.optim.AdamW([p, q], lr=0.1, fused=True)
    assert can_step_directly(fused)
    p.grad = torch.ones(3)
    optimizer_step(fused)  # q has no gradient: PyTorch's step (which skips q) runs, and creates p's state only
    assert len(fused.state) == 1 and float(fused.state[p]["step"]) == 1.0
    p.grad, q.grad = torch.ones(3), torch.ones(2)
    optimizer_step(fused)  # q has no state yet: step() again
    assert float(fused.state[p]["step"]) == 2.0 and float(fused.state[q]["step"]) == 1.0


def test_clear_grads_drops_every_gradient() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    clear_grads([opt])
    assert all(p.grad is None for p in net.parameters())


def test_engine_steps_through_an_optimizer_step_and_does_not_keep_the_optimizer() -> None:
    import gc
    import weakref

    from genlab.training.engines import LocalEngine

    engine = LocalEngine("cpu")
    net = _net()
    opt = make_adamw(net.parameters(), lr=0.1, impl="fused")
    for _ in range(2):
        loss = net.train()(torch.randn(8, 3)).square().mean()
        engine.step(loss, opt, list(net.parameters()), grad_clip=1.0)
    assert all(p.grad is None for p in net.parameters())
    assert all(float(st["step"]) == 2.0 for st in opt.state.values())
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None


def test_optimizer_step_under_a_fresh_scheduler_and_a_foreign_wrapper() -> None:
    import warnings

    net = _net()
    opt = make_adamw(net.parameters(), lr=0.1, impl="fused")
    net(torch.randn(4, 3)).sum().backward()
    opt.step()  # creates the state
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)  # wraps opt.step on the instance
    net(torch.randn(4, 3)).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()" warning
        optimizer_step(opt)
        sched.step()
    calls = []
    inner = opt.step

    def foreign(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return inner(*args, **kwargs)

    opt.step = foreign  # type: ignore[method-assign]
    net(torch.randn(4, 3)).sum().backward()
    optimizer_step(opt)  # someone else's wrapper: it is called
    assert calls == [1]


def test_clear_grads_uses_an_overridden_zero_grad() -> None:
    class Counting(torch.optim.SGD):
        calls = 0

        def zero_grad(self, set_to_none: bool = True) -> None:
            Counting.calls += 1
            super().zero_grad(set_to_none=set_to_none)

    p = nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    clear_grads([Counting([p], lr=0.1)])
    assert Counting.calls == 1 and p.grad is None
