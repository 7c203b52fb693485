"""Bring your own data: register_dataset, import-path factories, tensor files, genlab.train(data=...)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import genlab
from genlab.data import (
    ArrayDataset,
    TensorFileDataset,
    as_dataset,
    get_dataset,
    register_dataset,
    save_tensor_file,
    unregister_dataset,
)
from genlab.training.config import ConfigError, check_components, load_config

TINY = {
    "name": "user_tiny",
    "interpolant": {"name": "rectified_flow"},
    "model": {"name": "mlp", "hidden": 16, "depth": 2},
    "train": {"steps": 4, "batch_size": 16, "ckpt_every": 2, "log_every": 2, "ema_decay": 0.9, "warmup": 0},
    "sample": {"sampler": "euler", "steps": 3, "n": 8},
    "eval": {"n": 16, "seeds": 1, "floor_draws": 2, "metrics": ["sw"]},
    "logging": {"progress": False, "stdout": False},
}


def _points(n: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * torch.tensor([1.0, 0.3]) + 1.0


class _Pairs(Dataset):
    def __init__(self, n: int) -> None:
        self.x = _points(n)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] * 0.5, self.x[i]


class _Labelled(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 4, 4), i / 10.0), i % 3


def make_points(n: int = 64, seed: int = 0) -> ArrayDataset:
    """A factory named by import path in the tests below."""
    return ArrayDataset(_points(n, seed), item_names=("x1",))


def test_as_dataset_reads_every_container() -> None:
    x = _points(10)
    assert as_dataset(x).item_names == ("x1",)
    pairs = as_dataset((x * 0.5, x))
    assert pairs.item_names == ("x0", "x1") and torch.equal(pairs.tensors[1], x)
    assert as_dataset({"x1": x, "label": torch.arange(10)}).item_names == ("x1", "label")
    from_ds = as_dataset(_Pairs(12))
    assert from_ds.item_names == ("x0", "x1") and len(from_ds) == 12
    lab = as_dataset(_Labelled())
    assert lab.item_names == ("x1", "label") and lab.tensors[1].tolist() == [i % 3 for i in range(10)]


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (torch.arange(10), TypeError, "floating-point"),
        (torch.zeros(10, 1, 2, 2) + 2.0, ValueError, r"\[-1, 1\]"),
        (torch.full((10, 2), math.nan), ValueError, "NaN"),
        (torch.zeros(10, 2, 2), ValueError, "vectors"),
        ((torch.zeros(10, 2), torch.zeros(9, 2)), ValueError, "items"),
        ({"x1": torch.zeros(4, 2), "label": torch.zeros(4)}, TypeError, "integer class"),
        ({"x1": torch.zeros(4, 2), "y": torch.zeros(4)}, ValueError, "unknown key"),
        ("moons", TypeError, "expected a Tensor"),
        (torch.zeros(1, 2), ValueError, "at least 2"),
    ],
)
def test_bad_user_data_is_refused_clearly(data: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        as_dataset(data)


def test_register_dataset_and_import_path() -> None:
    register_dataset("user_points", make_points)
    try:
        ds = get_dataset("user_points", n=20, seed=1)
        assert len(ds) == 20 and torch.equal(ds.tensors[0], _points(20, 1))
        with pytest.raises(ValueError, match="registered already"):
            register_dataset("user_points", make_points)
        with pytest.raises(ValueError, match="built-in"):
            register_dataset("moons", make_points)
        check_components(load_config({**TINY, "data": {"name": "user_points", "n": 20}}))
    finally:
        unregister_dataset("user_points")
    with pytest.raises(ConfigError, match="register_dataset"):
        check_components(load_config({**TINY, "data": {"name": "user_points"}}))
    path_name = f"{__name__}:make_points"
    assert len(get_dataset(path_name, n=8)) == 8
    with pytest.raises(ConfigError, match="has no attribute"):
        check_components(load_config({**TINY, "data": {"name": f"{__name__}:nope"}}))


def test_tensor_file_round_trip(tmp_path: Path) -> None:
    ds = as_dataset({"x0": _points(16) * 0.5, "x1": _points(16), "label": torch.arange(16) % 4})
    path = save_tensor_file(ds, tmp_path / "d.pt")
    back = TensorFileDataset(path)
    assert back.item_names == ds.item_names and all(torch.equal(a, b) for a, b in zip(back.tensors, ds.tensors))
    with pytest.raises(FileNotFoundError, match="data.path"):
        TensorFileDataset(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="cannot read"):
        TensorFileDataset(tmp_path / "bad.pt")


def test_train_with_user_tensor_then_resume_sample_eval(tmp_path: Path) -> None:
    x1 = _points(96)
    run = tmp_path / "run"
    cfg = {**TINY, "data": {"name": "moons", "test_fraction": 0.25}}
    res = genlab.train(cfg, out=run, data=x1, overrides=["train.steps=2"])
    assert (run / "data.pt").is_file()
    saved = load_config(run / "config.yaml")
    assert saved.data.name == "tensor_file" and saved.data.test_fraction == 0.25
    loaded = genlab.training.load_run(run)
    assert torch.equal(
        torch.sort(torch.cat([loaded.components.split.train.tensors[0], loaded.components.split.test.tensors[0]]), 0)[0],
        torch.sort(x1, 0)[0],
    )
    genlab.train(None, out=run, resume=True, overrides=["train.steps=4"])  # the folder has its own copy
    with pytest.raises(ValueError, match="differs"):
        genlab.train(None, out=run, resume=True, data=x1 + 1.0, overrides=["train.steps=6"])
    assert res.step == 2
    ev = genlab.training.evaluate(run, write=False)
    assert math.isfinite(ev.metrics["sw"])


def test_cli_trains_an_import_path_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from genlab.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "data": {"name": "test_user_data:make_points", "n": 64}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "r")]) in (0, None)
    assert (tmp_path / "r" / "checkpoints").is_dir()
