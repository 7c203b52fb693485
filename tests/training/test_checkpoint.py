"""Checkpoints: atomic writes survive a crash mid-write; keep-last-K; weights_only; RNG round trips."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from genlab.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    check_plain,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    verify_checkpoint,
)


def test_crash_mid_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    manager = CheckpointManager(tmp_path, keep_last=3)
    good = manager.save(10, {"w": torch.ones(3), "step": 10})

    def crashing_save(obj, fh, *args, **kwargs):
        fh.write(b"PARTIAL-BYTES")  # half a file reaches the disk, then the process "dies"
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        manager.save(20, {"w": torch.zeros(3), "step": 20})
    monkeypatch.undo()
    assert not manager.path_for(20).exists()
    assert sorted(os.listdir(tmp_path)) == ["ckpt_00000010.pt", "latest"]  # temp file removed too
    assert manager.latest() == good
    assert torch.equal(load_checkpoint(tmp_path)["w"], torch.ones(3))


def test_keep_last_and_latest_pointer(tmp_path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (5, 10, 15, 20):
        manager.save(step, {"step": step})
    assert [s for s, _ in manager.list()] == [15, 20]
    assert (tmp_path / "latest").read_text().strip() == "ckpt_00000020.pt"
    assert load_checkpoint(manager.latest())["step"] == 20
    (tmp_path / "latest").unlink()  # without the pointer, the highest step wins
    assert manager.latest() == manager.path_for(20)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")


def test_only_plain_objects_are_saved(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"state\['opt'\]\['obj'\] is a builtins.object"):
        save_checkpoint(tmp_path / "x.pt", {"opt": {"obj": object()}})
    assert not (tmp_path / "x.pt").exists()
    check_plain({"a": [1, 2.0, "s", None, (torch.zeros(1),)]})


def test_rng_states_round_trip_through_weights_only_file(tmp_path) -> None:
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(11)
    np.random.seed(12)
    random.seed(13)
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state(generators={"train": gen})})
    expected = (torch.rand(4), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    gen.manual_seed(0)
    state = torch.load(tmp_path / "rng.pt", weights_only=True)
    restore_rng_state(state["rng"], generators={"train": gen})
    got = (torch.rand(4), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and torch.equal(got[3], expected[3])


# ------------------------------------------------------------------------------------- integrity (issue 16)
def test_checksum_is_embedded_and_catches_zeroed_bytes(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.arange(20000, dtype=torch.float32), "step": 1})
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]  # the checksum lives inside the file
    assert verify_checkpoint(path) is True
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(20000, dtype=torch.float32))
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # inside the tensor: torch.load alone reads it
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


@pytest.mark.parametrize("size", [0, 10, 100, -1])
def test_truncated_or_empty_files_are_checkpoint_errors(tmp_path, size) -> None:
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(100)})
    full = path.read_bytes()
    path.write_bytes(full[: size if size >= 0 else len(full) - 1])
    with pytest.raises(CheckpointError, match="empty" if size == 0 else "truncated"):
        load_checkpoint(path)
    assert isinstance(CheckpointError(path, "x"), ValueError)  # the CLI prints it as one line


def test_checkpoints_without_checksum_still_load(tmp_path) -> None:
    path = tmp_path / "ckpt_00000001.pt"
    torch.save({"w": torch.ones(3), "step": 1}, path)  # a checkpoint of an earlier version
    assert verify_checkpoint(path) is False
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))


def test_load_latest_falls_back_and_says_why(tmp_path, capsys) -> None:
    manager = CheckpointManager(tmp_path)
    for step in (1, 2, 3):
        manager.save(step, {"step": step})
    manager.path_for(3).write_bytes(b"")
    found = manager.load_latest()
    assert found.path == manager.path_for(2) and found.state["step"] == 2
    assert found.skipped == [(manager.path_for(3), "is empty (0 bytes): its write was cut short")]
    assert "ckpt_00000002.pt" in capsys.readouterr().err
    assert load_checkpoint(tmp_path)["step"] == 2
    assert manager.quarantine(manager.path_for(3)) == tmp_path / "ckpt_00000003.pt.damaged"
    assert [s for s, _ in manager.list()] == [1, 2]
    manager.path_for(2).unlink()  # `latest` still names ckpt 3, which is gone now
    found = manager.load_latest(announce=False)
    assert found.state["step"] == 1 and "named by 'latest' but does not exist" in (found.note or "")
    manager.path_for(1).write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        manager.load_latest()
