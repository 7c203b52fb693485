"""The low-overhead training-step pieces (issue 14, faster loop) compute exactly what they replace."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genlab.training.ema import EMA
from genlab.training.fastpath import TrainMode, clip_grad_norm, make_adamw


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


def test_ema_update_equals_per_tensor_formula_bit_for_bit() -> None:
    net = _net()
    ema = EMA(net, decay=0.9, warmup=True, power=1.0)
    shadow = {k: v.clone() for k, v in ema.module.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(4):
        net.train()
        loss = net(torch.randn(8, 3)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        d = ema.update(net)
        assert d == min(0.9, 1.0 - (1.0 + step) ** -1.0)
        for name, p in net.named_parameters():  # shadow <- d*shadow + (1-d)*theta, in that op order
            shadow[name] = shadow[name].mul_(d).add_(p.detach(), alpha=1.0 - d)
        for name, b in net.named_buffers():
            shadow[name] = b.clone()
        for name, v in ema.module.state_dict().items():
            assert torch.equal(v, shadow[name]), name


def test_ema_cache_follows_replaced_parameters_and_a_new_model() -> None:
    net = _net()
    ema = EMA(net, decay=0.5, warmup=False)
    ema.update(net)
    net[0].weight = nn.Parameter(torch.ones_like(net[0].weight))  # a new tensor object: the pairing is rebuilt
    before = ema.module[0].weight.clone()
    ema.update(net)
    assert torch.equal(ema.module[0].weight, before * 0.5 + 0.5)
    other = _net()
    with torch.no_grad():
        for p in other.parameters():
            p.fill_(2.0)
    w = ema.module[3].bias.clone()
    ema.update(other)  # another model object: paired afresh
    assert torch.equal(ema.module[3].bias, w * 0.5 + 1.0)
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
