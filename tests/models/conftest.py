"""Run the network tests single-threaded: tiny convolutions gain nothing from threads on a shared 2-core box
and slow down badly when other processes compete for the cores. The previous setting is restored after each
test so the rest of the suite is unaffected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
