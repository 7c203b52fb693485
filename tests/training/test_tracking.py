"""Trackers: valid, complete JSON lines; wandb imported lazily, only when asked, offline mode honoured."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from genlab.training import train
from genlab.training.tracking import JsonlTracker, NullTracker, make_tracker


def test_jsonl_records_are_valid_json(tmp_path) -> None:
    tracker = JsonlTracker(tmp_path / "m.jsonl")
    tracker.log({"loss": torch.tensor(0.25), "nan": float("nan"), "name": "x"}, step=3)
    tracker.log({"loss": 0.125}, step=4)
    tracker.finish()
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 4]
    assert rows[0]["loss"] == 0.25 and rows[0]["nan"] == "nan" and rows[1]["loss"] == 0.125
    assert isinstance(make_tracker(tmp_path / "r1", is_main=False), NullTracker)
    assert not (tmp_path / "r1").exists()  # other ranks write nothing


def test_training_writes_metrics_and_never_imports_wandb(tmp_path, tiny, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    train(tiny(train={"steps": 20}), out=tmp_path / "run")
    assert "wandb" not in sys.modules
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20]
    assert {"loss", "lr", "grad_norm", "ema_decay", "it_per_s"} <= set(rows[0])


def test_wandb_when_asked_offline(tmp_path, tiny, monkeypatch) -> None:
    calls: dict[str, list] = {"init": [], "log": [], "finish": []}

    class _Run:
        id = "abc123"

        def log(self, metrics, step):
            calls["log"].append((step, dict(metrics)))

        def finish(self):
            calls["finish"].append(True)

    def init(**kwargs):
        calls["init"].append(kwargs)
        return _Run()

    fake = types.SimpleNamespace(init=init, Image=lambda p: p)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    train(tiny(train={"steps": 20}, logging={"wandb": True, "project": "p"}), out=tmp_path / "run")
    (init_kwargs,) = calls["init"]
    assert init_kwargs["mode"] == "offline" and init_kwargs["project"] == "p"
    assert init_kwargs["config"]["train"]["steps"] == 20
    assert [s for s, _ in calls["log"]] == [10, 20] and calls["finish"] == [True]
    assert (tmp_path / "run" / "wandb_id.txt").read_text().strip() == "abc123"
    assert (tmp_path / "run" / "metrics.jsonl").exists()  # JSON lines stay on


def test_wandb_missing_gives_install_hint(tmp_path, tiny, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with pytest.raises(ImportError, match=r"genlab\[track\]"):
        train(tiny(train={"steps": 2}, logging={"wandb": True}), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written
