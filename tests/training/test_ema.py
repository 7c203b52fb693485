"""EMA: the warm-up decay and the update formula against a hand computation; state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.training.ema import EMA, ema_decay_at


def test_decay_schedule_closed_form() -> None:
    # d_k = min(decay, 1 - (1 + k)^(-power))
    assert ema_decay_at(0, decay=0.999) == 0.0
    assert ema_decay_at(7, decay=0.999, power=0.5) == pytest.approx(1 - 8**-0.5)
    assert ema_decay_at(10**6, decay=0.99, power=2 / 3) == 0.99  # capped
    assert ema_decay_at(3, decay=0.9, warmup=False) == 0.9
    with pytest.raises(ValueError, match="decay must lie"):
        ema_decay_at(0, decay=1.0)


def test_update_matches_hand_computation() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    ema = EMA(net, decay=0.6, warmup=True, power=1.0)
    shadow = {k: v.clone() for k, v in net.state_dict().items()}
    for k in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.add_(1.0)  # a buffer: copied, not averaged
        d_hand = min(0.6, 1 - (1 + k) ** -1.0)  # 0, 0.5, 0.6, 0.6, 0.6
        assert ema.update(net) == pytest.approx(d_hand)
        for name, p in net.named_parameters():
            shadow[name] = d_hand * shadow[name] + (1 - d_hand) * p.detach()
        for name, v in ema.module.named_parameters():
            torch.testing.assert_close(v, shadow[name], rtol=0, atol=1e-12)
        torch.testing.assert_close(ema.module[1].running_mean, net[1].running_mean)
    assert ema.step == 5
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_state_round_trip() -> None:
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.9)
    for _ in range(3):
        with torch.no_grad():
            net.weight.add_(1.0)
        ema.update(net)
    other = EMA(nn.Linear(2, 2), decay=0.5, warmup=False)
    other.load_state_dict(ema.state_dict())
    assert (other.step, other.decay, other.warmup) == (3, 0.9, True)
    assert torch.equal(other.module.weight, ema.module.weight)
    assert other.current_decay() == ema.current_decay()
