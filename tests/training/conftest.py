"""Fixtures of the training tests: a tiny run config (seconds on one CPU core)."""

from __future__ import annotations

from typing import Any

import pytest


def tiny_config(**sections: dict[str, Any]) -> dict[str, Any]:
    """A tiny moons run; ``sections`` update the defaults section by section."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "data": {"name": "moons", "n": 600, "seed": 0},
        "interpolant": {"name": "rectified_flow"},
        "coupling": {"name": "independent"},
        "model": {"name": "mlp", "kind": "velocity", "hidden": 32, "depth": 2},
        "train": {
            "steps": 40,
            "batch_size": 64,
            "lr": 3e-3,
            "warmup": 5,
            "schedule": "cosine",
            "ema_decay": 0.99,
            "log_every": 10,
            "ckpt_every": 20,
            "keep_last": 5,
            "device": "cpu",
            "engine": "local",
        },
        "sample": {"sampler": "euler", "steps": 5, "n": 200},
        "eval": {"n": 200},
        "logging": {"progress": False, "stdout": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return cfg


@pytest.fixture
def tiny() -> Any:
    """The :func:`tiny_config` factory."""
    return tiny_config
