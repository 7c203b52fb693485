"""Issue 16 (reliability), checkpoint/fault half: fault injection into real training runs.

Faults: a SIGKILL in the middle of a checkpoint write; a truncated, empty, byte-zeroed or deleted newest
checkpoint; no intact checkpoint at all; SIGTERM and SIGINT mid-run; two runs into one folder; a failing
periodic sampling/evaluation. Each ends in a result or a clear one-line error (never a raw traceback), the run
folder stays usable, and a resumed run ends bit for bit where an uninterrupted one does. Each test failed
before the fix it guards. Runs are moons_tiny-sized (6 steps), the whole file takes well under a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from genlab.cli import main
from genlab.training import train
from genlab.training.checkpoint import (
    CheckpointManager,
    RunLock,
    clean_stale_temporaries,
    load_checkpoint,
)
from genlab.training.trainer import Trainer, TrainingInterrupted

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "moons_tiny.yaml")
FAST = ["train.steps=6", "train.ckpt_every=3", "train.log_every=3", "eval.n=64", "sample.n=64"]
SETS = [arg for o in FAST for arg in ("--set", o)]
TIMEOUT = 60.0


def _ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"ckpt_{step:08d}.pt"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {
        **{f"model.{k}": v for k, v in state["model"].items()},
        **{f"ema.{k}": v for k, v in state["ema"]["weights"].items()},
    }


def _assert_same_weights(path: Path, reference: dict[str, torch.Tensor]) -> None:
    got = _weights(path)
    assert got.keys() == reference.keys()
    assert all(torch.equal(got[k], reference[k]) for k in got), (
        "resumed run differs from the uninterrupted one"
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 6-step run (checkpoints at steps 3 and 6); tests work on copies."""
    out = tmp_path_factory.mktemp("faults") / "run"
    train(TINY, out=out, overrides=FAST)
    return out


@pytest.fixture(scope="module")
def reference(finished: Path) -> dict[str, torch.Tensor]:
    """Final raw and EMA weights of the uninterrupted run."""
    return _weights(_ckpt(finished, 6))


def _copy(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    """A Python child process (one torch thread, like the test process, so float sums are identical)."""
    prelude = "import signal, sys, torch\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    prelude += "torch.set_num_threads(1)\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("GENLAB_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("child never reached the fault point")
        time.sleep(0.02)


# ------------------------------------------------------------------------------------- damaged checkpoints
def _truncate(p: Path) -> None:
    with open(p, "r+b") as fh:
        fh.truncate(p.stat().st_size // 2)


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _zero_inside(p: Path) -> None:  # the tensor bytes in the middle: torch.load alone reads this silently
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 256] = bytes(256)
    p.write_bytes(bytes(data))


def _delete(p: Path) -> None:  # `latest` now names a missing file
    p.unlink()


DAMAGE = {"truncated": _truncate, "zero-byte": _empty, "zeroed-bytes": _zero_inside, "missing": _delete}
WORDS = {
    "truncated": "truncated",
    "zero-byte": "empty",
    "zeroed-bytes": "checksum",
    "missing": "does not exist",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_everywhere(
    finished, reference, tmp_path, capsys, damage
) -> None:
    run = _copy(finished, tmp_path)
    DAMAGE[damage](_ckpt(run, 6))
    capsys.readouterr()

    # genlab sample: the intact step-3 checkpoint, and stderr says which one and why
    assert main(["sample", "--run", str(run), "--n", "16", "--out", str(tmp_path / "s.pt")]) == 0
    out, err = capsys.readouterr()
    assert '"step": 3' in out
    assert "ckpt_00000003.pt" in err and "ckpt_00000006.pt" in err and WORDS[damage] in err
    assert "Traceback" not in err

    # genlab eval: the same fallback, announced the same way
    assert main(["eval", "--run", str(run), "--n", "32", "--metrics", "sw"]) == 0
    out, err = capsys.readouterr()
    assert '"step": 3' in out and "ckpt_00000003.pt" in err and WORDS[damage] in err

    # genlab train --resume: from step 3, the damaged file moved aside, ending bit for bit on the reference
    assert main(["train", "--out", str(run), "--resume"]) == 0
    _, err = capsys.readouterr()
    assert "ckpt_00000003.pt" in err and WORDS[damage] in err
    if damage != "missing":
        assert (run / "checkpoints" / "ckpt_00000006.pt.damaged").is_file()
    _assert_same_weights(_ckpt(run, 6), reference)


def test_no_intact_checkpoint_is_one_clear_error(finished, tmp_path, capsys) -> None:
    run = _copy(finished, tmp_path)
    _truncate(_ckpt(run, 6))
    _empty(_ckpt(run, 3))
    before = sorted(p.name for p in run.rglob("*"))
    capsys.readouterr()
    for argv in (
        ["sample", "--run", str(run), "--n", "16", "--out", str(tmp_path / "s.pt")],
        ["eval", "--run", str(run), "--n", "32", "--metrics", "sw"],
        ["train", "--out", str(run), "--resume"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "no intact checkpoint" in err and "ckpt_00000003.pt is empty" in err and "Traceback" not in err
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written, nothing moved
    assert not (tmp_path / "s.pt").exists()


# ------------------------------------------------------------------------------- SIGKILL mid checkpoint write
KILL_MID_WRITE = """
import io, pathlib, time
real_save = torch.save

def slow_save(obj, f, *args, **kwargs):  # the step-6 checkpoint: half its bytes reach the disk, then we hang
    if isinstance(obj, dict) and obj.get("step") == 6 and "model" in obj:
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        pathlib.Path(sys.argv[1]).write_text("writing")
        time.sleep(600)
    return real_save(obj, f, *args, **kwargs)

torch.save = slow_save
from genlab.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_during_a_checkpoint_write(reference, tmp_path, capsys) -> None:
    run, mark = tmp_path / "run", tmp_path / "writing"
    proc = _child(KILL_MID_WRITE, str(mark), "train", TINY, "--out", str(run), *SETS)
    _wait_for(mark, proc)
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    folder = run / "checkpoints"
    temps = [p.name for p in folder.iterdir() if p.name.startswith(".ckpt_00000006.pt.")]
    assert temps and all(t.endswith(".tmp") for t in temps)  # what a kill leaves behind
    assert not _ckpt(run, 6).exists() and (folder / "latest").read_text().strip() == "ckpt_00000003.pt"
    assert (run / ".lock").is_file()  # the dead process's lock

    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "stale lock" in err and "stale temporary" in err
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")] and not (run / ".lock").exists()
    _assert_same_weights(_ckpt(run, 6), reference)


def test_stale_temporaries_of_live_writers_are_kept(tmp_path) -> None:
    live, dead = os.getppid(), 2**22 + 12345  # the parent runs; pid_max is at most 2**22
    names = [
        f".ckpt_00000010.pt.{live}.ab12cd34.tmp",  # another live process is writing it: kept
        f".ckpt_00000010.pt.{dead}.ab12cd34.tmp",  # its writer is gone: removed
        ".ckpt_00000010.pt.k2j_x9qz.tmp",  # a pid-less temporary (utils.atomic_write): removed
        ".latest.q1w2e3r4.tmp",
        "ckpt_00000010.pt",  # not a temporary
        "notes.tmp",
    ]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    removed = clean_stale_temporaries(tmp_path, announce=False)
    assert sorted(p.name for p in removed) == sorted(names[1:4])
    assert sorted(os.listdir(tmp_path)) == sorted([names[0], names[4], names[5]])


# -------------------------------------------------------------------------------------- SIGTERM / SIGINT
SLOW_STEPS = """
import pathlib, time
from genlab.training.trainer import Trainer
real_step = Trainer.train_step

def slow_step(self, batch):  # step 4 takes a second: the signal arrives while it runs
    if self.step == 3:
        pathlib.Path(sys.argv[1]).write_text("step 4")
        time.sleep(1.0)
    return real_step(self, batch)

Trainer.train_step = slow_step
from genlab.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_run_saves_and_resumes_bit_exactly(reference, tmp_path, capsys, sig) -> None:
    run, mark = tmp_path / "run", tmp_path / "in_step_4"
    proc = _child(SLOW_STEPS, str(mark), "train", TINY, "--out", str(run), *SETS)
    _wait_for(mark, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert f"stopped by {sig.name} at step 4" in err and "--resume" in err
    assert (run / "checkpoints" / "latest").read_text().strip() == "ckpt_00000004.pt"  # no step lost
    assert load_checkpoint(_ckpt(run, 4))["step"] == 4 and not (run / ".lock").exists()

    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume"]) == 0
    _assert_same_weights(_ckpt(run, 6), reference)


# ------------------------------------------------------------------------------------------------ run lock
HOLD_LOCK = """
from genlab.training.checkpoint import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
import time
time.sleep(600)
"""


def test_second_run_into_one_folder_is_refused_and_a_dead_lock_taken_over(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    proc = _child(HOLD_LOCK, str(run))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert main(["train", TINY, "--out", str(run), *SETS]) == 2
        err = capsys.readouterr().err
        assert str(run / ".lock") in err and f"pid {proc.pid}" in err and "Traceback" not in err
        assert os.listdir(run) == [".lock"]  # the refused run wrote nothing
        with pytest.raises(FileExistsError, match=f"pid {proc.pid}"):
            RunLock(run).acquire()
    finally:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
    assert main(["train", TINY, "--out", str(run), *SETS]) == 0  # its holder died: taken over
    assert "taking over the stale lock" in capsys.readouterr().err
    assert not (run / ".lock").exists()


# -------------------------------------------------------------------------- failing periodic sample / eval
def test_failing_periodic_sampling_and_eval_do_not_lose_the_run(tmp_path, monkeypatch, capsys) -> None:
    def broken(self: Trainer) -> None:
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(Trainer, "save_samples", broken)
    monkeypatch.setattr(Trainer, "evaluate_now", broken)
    result = train(
        TINY, out=tmp_path / "run", overrides=[*FAST, "train.sample_every=2", "train.eval_every=2"]
    )
    assert result.step == 6 and result.checkpoint == _ckpt(tmp_path / "run", 6)
    err = capsys.readouterr().err
    assert "sampling at step 2 failed (RuntimeError: sampler exploded); training goes on" in err
    assert "evaluation at step 4 failed" in err
    assert [s for s, _ in CheckpointManager(tmp_path / "run" / "checkpoints").list()] == [3, 6]


@pytest.mark.parametrize(
    ("signals", "graceful"),
    [
        ((signal.SIGTERM,), True),
        ((signal.SIGINT, signal.SIGTERM), True),
        ((signal.SIGTERM, signal.SIGTERM), False),
    ],
    ids=["once", "INT-then-TERM", "TERM-twice"],
)
def test_a_repeated_signal_aborts_a_different_one_does_not(tmp_path, signals, graceful) -> None:
    def send(trainer: Trainer) -> None:
        if trainer.step == 2:
            for sig in signals:
                os.kill(os.getpid(), sig)

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as info:
        train(TINY, out=tmp_path / "run", overrides=FAST, hooks=[send])
    assert isinstance(info.value, TrainingInterrupted) is graceful
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored
    assert not (tmp_path / "run" / ".lock").exists()
    steps = [s for s, _ in CheckpointManager(tmp_path / "run" / "checkpoints").list()]
    assert steps == ([2] if graceful else [])
