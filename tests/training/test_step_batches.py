"""Batches as a function of (seed, step): reproducible, epoch permutations, disjoint rank shards."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DistributedSampler

from genlab.data import ArrayDataset
from genlab.training import StepBatches


def _data(n: int = 50) -> ArrayDataset:
    return ArrayDataset(
        torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n), item_names=("x1", "label")
    )


def test_order_is_a_function_of_seed_and_step() -> None:
    a, b = StepBatches(_data(), batch_size=8, seed=3), StepBatches(_data(), batch_size=8, seed=3)
    steps = [17, 0, 5, 17, 6, 30]  # any access order, including going back
    assert all(torch.equal(a.indices(s), b.indices(s)) for s in steps)
    assert not torch.equal(a.indices(0), StepBatches(_data(), batch_size=8, seed=4).indices(0))
    x1, labels = a.batch(5)
    assert torch.equal(x1[:, 0].long(), a.indices(5)) and torch.equal(labels, a.indices(5))
    it = a.iterate(4)
    assert all(torch.equal(next(it)[1], a.indices(s)) for s in range(4, 12))


def test_epochs_are_permutations() -> None:
    sb = StepBatches(_data(50), batch_size=8, seed=0)
    assert sb.per_epoch == 6  # 50 // 8, the partial batch is dropped
    for epoch in range(3):
        seen = torch.cat([sb.indices(epoch * 6 + b) for b in range(6)])
        assert seen.unique().numel() == 48
    assert not torch.equal(sb.indices(0), sb.indices(6))


def test_ranks_get_disjoint_shards() -> None:
    data = _data(64)
    ranks = [StepBatches(data, batch_size=4, seed=1, rank=r, world_size=2) for r in range(2)]
    for step in (0, 3, 9):
        a, b = (r.indices(step) for r in ranks)
        assert set(a.tolist()).isdisjoint(b.tolist())
    epoch = [torch.cat([r.indices(s) for s, r in itertools.product(range(8), ranks)])]
    assert epoch[0].unique().numel() == 64  # both shards together cover the epoch


def test_batch_larger_than_shard_is_refused() -> None:
    with pytest.raises(ValueError, match="lower train.batch_size"):
        StepBatches(_data(10), batch_size=8, seed=0, world_size=2)


def test_dataloader_workers_give_the_same_batches() -> None:
    sb = StepBatches(_data(50), batch_size=8, seed=0, num_workers=1)
    it = sb.iterate(3)
    for step in range(3, 12):
        x1, labels = next(it)
        assert torch.equal(labels, sb.indices(step)) and torch.equal(x1[:, 0].long(), labels)


@pytest.mark.parametrize(("n", "world", "rank"), [(100, 1, 0), (101, 3, 0), (101, 3, 2), (7, 2, 1)])
def test_epoch_order_is_the_distributed_samplers_order(n: int, world: int, rank: int) -> None:
    """The tensor recipe equals ``list(DistributedSampler)`` (shuffle, drop_last) for every epoch, rank and size."""
    data = ArrayDataset(torch.arange(n, dtype=torch.float32)[:, None], item_names=("x1",))
    batches = StepBatches(data, batch_size=1, seed=11, rank=rank, world_size=world)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=11, drop_last=True)
    for epoch in (0, 1, 5):
        sampler.set_epoch(epoch)
        assert batches.epoch_order(epoch).tolist() == list(iter(sampler))
