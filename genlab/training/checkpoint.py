"""Checkpoints: atomic writes with a checksum, a ``latest`` pointer, keep-last-K, fallback to the newest intact
checkpoint, ``weights_only`` loading, RNG states, a run lock, stale-temporary clean-up.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, written with ``torch.save`` to a
hidden temp file next to the target (``.<name>.<pid>.<token>.tmp``) and renamed onto it (``os.replace``), so a
crash mid-write never leaves a partial file at the final path. Everything loads with
``torch.load(weights_only=True)``: random states are stored as tensors, the config as a plain dict, and no class
is pickled.

Integrity: the file is a zip archive (``torch.save``'s format) whose archive comment holds
``genlab-sha256:<hex>``, the SHA-256 of every byte before the comment-length field. The checksum lives inside
the file, so it is written atomically with it, travels with it when copied, and ``torch.load`` reads the file
unchanged. :func:`verify_checkpoint` recomputes it; :func:`load_checkpoint` refuses a damaged file with a
:class:`CheckpointError` naming the damage (empty, truncated, checksum mismatch, unreadable) instead of torch's
raw error, and :meth:`CheckpointManager.load_latest` falls back to the newest intact checkpoint and says which
one it used and why. Checkpoints written before checksums existed (comment-free archives) still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import secrets
import socket
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "LoadedCheckpoint",
    "RunLock",
    "RunLockedError",
    "capture_rng_state",
    "check_plain",
    "clean_stale_temporaries",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "verify_checkpoint",
]

_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")

#: Hidden temporaries of an atomic write in a checkpoint folder: ``.<name>.<pid>.<token>.tmp`` (this module)
#: or ``.<name>.<token>.tmp`` (``genlab.utils.atomic_write``, and checkpoints of earlier versions).
_TMP_RE = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]+\.tmp$")

_TRAILER_TAG = b"genlab-sha256:"
_TRAILER_LEN = len(_TRAILER_TAG) + 64  # the archive comment: tag + hex digest
_EOCD_SIG = b"PK\x05\x06"  # zip end-of-central-directory record (22 bytes + comment)
_EOCD_LEN = 22
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint file (or a folder's every checkpoint) is damaged or unreadable.

    Attributes:
        path: The file (or folder).
        reason: What is wrong, as a sentence fragment (``"is truncated ..."``).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        what = "checkpoint folder" if self.path.is_dir() else "checkpoint"
        super().__init__(f"{what} {str(self.path)!r} {reason}")


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Write ``path`` through a hidden temp file named with this process id, renamed onto it on success.

    The pid in the name lets :func:`clean_stale_temporaries` tell a temporary of a live writer from one left
    by a killed process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _ChecksumWriter:
    """File-like sink for ``torch.save``: writes through to ``fh`` and hashes, holding back the last two bytes
    (the zip comment length) so :meth:`finish` can append the checksum as the archive comment."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._hash = hashlib.sha256()
        self._tail = b""

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if n >= 2:
            parts: list[Any] = [self._tail, view[:-2]]
            tail = bytes(view[-2:])
        else:
            joined = self._tail + bytes(view)
            parts, tail = [joined[:-2]], joined[-2:]
        for part in parts:
            if len(part):
                self._hash.update(part)
                self._fh.write(part)
        self._tail = tail
        return n

    def flush(self) -> None:
        self._fh.flush()

    def finish(self) -> str:
        """Append ``comment length + genlab-sha256:<hex>`` and return the hex digest."""
        if self._tail != b"\x00\x00":
            raise RuntimeError(
                "torch.save did not end with a comment-free zip archive; cannot add a checksum"
            )
        digest = self._hash.hexdigest()
        self._fh.write(struct.pack("<H", _TRAILER_LEN) + _TRAILER_TAG + digest.encode("ascii"))
        return digest


_PLAIN = (int, float, bool, str, type(None))


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise a ``TypeError`` naming the entry if ``obj`` holds anything but tensors, numbers, strings,
    ``None``, lists, tuples and string-keyed dicts (what ``torch.load(weights_only=True)`` accepts without
    allow-lists).

    Args:
        obj: The object to check.
        where: Its name in messages.
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where}: key {k!r} of type {type(k).__name__} is not a str/int")
            check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints hold only tensors, "
        "numbers, strings, None, lists and dicts (so they load with weights_only=True)"
    )


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically with ``torch.save`` (temp file + ``os.replace``), its SHA-256 inside.

    Args:
        path: Destination file.
        state: Plain dict (tensors, numbers, strings, lists, dicts); checked with :func:`check_plain` first.

    Returns:
        The written path.
    """
    check_plain(state)
    path = Path(path)
    with _atomic_file(path) as fh:
        sink = _ChecksumWriter(fh)
        torch.save(state, sink)
        sink.finish()
    return path


def verify_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Check a checkpoint file's integrity without unpickling it.

    Args:
        path: The checkpoint file.

    Returns:
        ``True`` if its embedded SHA-256 matches its bytes; ``False`` if it carries no checksum (written before
        checksums existed; it may still load).

    Raises:
        CheckpointError: If it does not exist, is empty, truncated, or its bytes differ from its checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "does not exist")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "is empty (0 bytes): its write was cut short")
    tail_len = min(size, _EOCD_LEN + _TRAILER_LEN)
    with open(path, "rb") as fh:
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        ours = (
            tail_len == _EOCD_LEN + _TRAILER_LEN
            and tail[:4] == _EOCD_SIG
            and tail[_EOCD_LEN - 2 : _EOCD_LEN] == struct.pack("<H", _TRAILER_LEN)
            and tail[_EOCD_LEN:].startswith(_TRAILER_TAG)
        )
        if not ours:
            if tail[-_EOCD_LEN:][:4] == _EOCD_SIG and tail[-2:] == b"\x00\x00":
                return False  # a checksum-free archive of an earlier version
            raise CheckpointError(
                path, f"is truncated or damaged ({size} bytes; the end of its archive is missing or altered)"
            )
        expected = tail[_EOCD_LEN + len(_TRAILER_TAG) :].decode("ascii", "replace")
        digest = hashlib.sha256()
        fh.seek(0)
        remaining = size - _TRAILER_LEN - 2
        while remaining > 0:
            chunk = fh.read(min(_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    if digest.hexdigest() != expected:
        raise CheckpointError(
            path,
            f"is damaged: its bytes no longer match its checksum (sha256 {digest.hexdigest()[:12]}…, "
            f"written as {expected[:12]}…)",
        )
    return True


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Verify and load a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path: A checkpoint file, or a run folder / ``checkpoints`` folder (its newest intact checkpoint is
            loaded, see :meth:`CheckpointManager.load_latest`).
        map_location: Where tensors are loaded.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: If there is no such file or the folder holds no checkpoint.
        CheckpointError: If the file is damaged (or, for a folder, no checkpoint is intact).
    """
    path = Path(path)
    if path.is_dir():
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        return CheckpointManager(folder).load_latest(map_location=map_location).state
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch's reader raises RuntimeError, EOFError, UnpicklingError, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(path, f"cannot be read ({type(err).__name__}: {first[:200]})") from err
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a checkpoint dict")
    return state


@dataclass
class LoadedCheckpoint:
    """What :meth:`CheckpointManager.load_latest` found.

    Attributes:
        path: The checkpoint loaded.
        state: Its state dict.
        skipped: ``(path, reason)`` of every newer checkpoint passed over (damaged, or named by ``latest``
            but missing).
        note: One line saying which checkpoint was used and why (``None`` when the latest one was intact).
    """

    path: Path
    state: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    note: str | None = None


class CheckpointManager:
    """``ckpt_<step>.pt`` files in one folder, a ``latest`` pointer file, and pruning to the last
    ``keep_last``.

    Args:
        folder: The ``checkpoints`` folder.
        keep_last: Number of checkpoints kept after each save (``None``: keep all).
    """

    def __init__(self, folder: str | os.PathLike[str], *, keep_last: int | None = None) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
        self.folder = Path(folder)
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        """File name of the checkpoint of ``step`` (zero-padded so names sort by step)."""
        return self.folder / f"ckpt_{int(step):08d}.pt"

    def list(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every complete checkpoint, sorted by step (temp files are ignored)."""
        if not self.folder.is_dir():
            return []
        found = []
        for p in self.folder.iterdir():
            m = _CKPT_RE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        """The checkpoint named by the ``latest`` pointer, else the highest step, else ``None``."""
        pointer = self.folder / "latest"
        if pointer.is_file():
            target = self.folder / pointer.read_text().strip()
            if target.is_file():
                return target
        found = self.list()
        return found[-1][1] if found else None

    def load_latest(
        self, *, map_location: str | torch.device | None = "cpu", announce: bool = True
    ) -> LoadedCheckpoint:
        """Load the newest intact checkpoint: the one ``latest`` names, else the others by decreasing step.

        Every file passed over is named with its damage, and the choice is printed to stderr (``announce``).

        Args:
            map_location: Where tensors are loaded.
            announce: Print the note when a newer checkpoint was passed over.

        Returns:
            :class:`LoadedCheckpoint`.

        Raises:
            FileNotFoundError: If the folder holds no checkpoint at all.
            CheckpointError: If no checkpoint is intact (each one is named with its damage).
        """
        skipped: list[tuple[Path, str]] = []
        candidates: list[Path] = []
        pointer = self.folder / "latest"
        if pointer.is_file():
            named = pointer.read_text().strip()
            target = self.folder / named
            if named and target.is_file():
                candidates.append(target)
            elif named:
                skipped.append((target, "is named by 'latest' but does not exist (deleted?)"))
        candidates += [p for _, p in reversed(self.list()) if p not in candidates]
        if not candidates and not skipped:
            raise FileNotFoundError(f"no checkpoint in {str(self.folder)!r}")
        for path in candidates:
            try:
                state = load_checkpoint(path, map_location=map_location)
            except CheckpointError as err:
                skipped.append((path, err.reason))
                continue
            note = None
            if skipped:
                why = "; ".join(f"{p.name} {reason}" for p, reason in skipped)
                note = f"using checkpoint {str(path)!r} (step {state.get('step', '?')}), the newest intact one: {why}"
                if announce:
                    print(f"genlab: {note}", file=sys.stderr, flush=True)
            return LoadedCheckpoint(path=path, state=state, skipped=skipped, note=note)
        why = "; ".join(f"{p.name} {reason}" for p, reason in skipped)
        raise CheckpointError(
            self.folder,
            f"holds no intact checkpoint: {why}. Restore a copy of the run, or start it afresh in another folder",
        )

    def quarantine(self, path: str | os.PathLike[str]) -> Path | None:
        """Rename a damaged checkpoint to ``<name>.damaged`` (kept for inspection, no longer listed or pruned
        in place of good ones). Returns the new path (``None`` if the file is gone)."""
        path = Path(path)
        if not path.is_file():
            return None
        target = path.with_name(path.name + ".damaged")
        os.replace(path, target)
        return target

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint of ``step``, point ``latest`` at it, then prune old ones.

        Args:
            step: Training step.
            state: Plain checkpoint dict.

        Returns:
            The checkpoint path.
        """
        path = save_checkpoint(self.path_for(step), state)
        with _atomic_file(self.folder / "latest") as fh:
            fh.write((path.name + "\n").encode())
        if self.keep_last is not None:
            for _, old in self.list()[: -self.keep_last]:
                if old != path:
                    old.unlink(missing_ok=True)
        return path


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def capture_rng_state(*, generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random state that training touches, as tensors and plain numbers.

    Args:
        generators: Named ``torch.Generator`` objects to capture as well (e.g. the training-noise generator).

    Returns:
        ``{"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": {...}, "python": {...},
        "generators": {name: ByteTensor}}``.
    """
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": _numpy_state(),
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: dict[str, Any], *, generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only when the device count matches).

    Args:
        state: The captured state.
        generators: Generators to restore, by the names they were captured under.

    Raises:
        KeyError: If a requested generator has no saved state.
    """
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    npst = state["numpy"]
    np.random.set_state(
        (npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    for name, gen in (generators or {}).items():
        saved = state["generators"][name]
        gen.set_state(saved.cpu())


# ---------------------------------------------------------------------------------------------- run folder safety
def clean_stale_temporaries(
    folder: str | os.PathLike[str], *, names: Callable[[str], bool] | None = None, announce: bool = True
) -> list[Path]:
    """Remove hidden ``.<name>….tmp`` files left in ``folder`` by a write that was killed (SIGKILL, power loss).

    A temporary whose name carries the id of a live process other than this one is kept (it is being
    written); one without a pid (``genlab.utils.atomic_write`` and earlier versions) is removed, so call this
    while holding the folder's :class:`RunLock` (no other trainer writes there then).

    Args:
        folder: The folder (a run's ``checkpoints`` folder, or the run folder).
        names: Only temporaries of target names it accepts (default: every target name).
        announce: Print what was removed to stderr.

    Returns:
        The removed files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed: list[Path] = []
    for p in sorted(folder.iterdir()):
        m = _TMP_RE.match(p.name)
        if m is None or not p.is_file() or (names is not None and not names(m.group("name"))):
            continue
        pid = m.group("pid")
        if pid is not None and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    if removed and announce:
        print(
            f"genlab: removed {len(removed)} stale temporary file(s) left by an interrupted write in "
            f"{str(folder)!r}: {[p.name for p in removed]}",
            file=sys.stderr,
            flush=True,
        )
    return removed


class RunLockedError(FileExistsError):
    """Another live process holds a run folder's lock.

    Attributes:
        lock: The lock file.
        pid: The holder's process id (``None`` if unreadable).
    """

    def __init__(self, lock: Path, pid: int | None, host: str | None) -> None:
        self.lock, self.pid = lock, pid
        who = f"pid {pid}" + (f" on {host}" if host else "") if pid is not None else "another process"
        super().__init__(
            f"run folder {str(lock.parent)!r} is in use by another genlab run ({who}; lock file "
            f"{str(lock)!r}); wait for it to finish, stop it, or choose another --out"
        )


class RunLock:
    """An exclusive lock on a run folder: the file ``<run>/.lock`` holding ``"<pid> <host>"``, locked with
    ``fcntl.flock`` (``O_EXCL`` creation where ``fcntl`` is missing) and removed on release.

    A lock file left by a dead process (its ``flock`` died with it) is taken over with a warning.

    Args:
        run_dir: The run folder.

    Example:
        .. code-block:: python

            lock = RunLock("runs/moons").acquire()
            try:
                ...  # no other genlab train writes into runs/moons meanwhile
            finally:
                lock.release()
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def _holder(self) -> tuple[int | None, str | None]:
        try:
            parts = self.path.read_text().split()
        except OSError:
            return None, None
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        return pid, (parts[1] if len(parts) > 1 else None)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def check(self) -> None:
        """Raise :class:`RunLockedError` if a live process holds the lock (acquires nothing).

        Raises:
            RunLockedError: If the folder is locked by a live process.
        """
        if not self.path.is_file() or self.held:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            pid, host = self._holder()
            if pid is not None and _pid_alive(pid):
                raise RunLockedError(self.path, pid, host) from None
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise RunLockedError(self.path, *self._holder()) from None
        finally:
            os.close(fd)

    def acquire(self) -> RunLock:
        """Take the lock (once; a second call is a no-op).

        Returns:
            ``self``.

        Raises:
            RunLockedError: If a live process holds it.
        """
        if self.held:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None  # type: ignore[assignment]
        while True:
            if fcntl is None:  # pragma: no cover
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    pid, host = self._holder()
                    if pid is not None and _pid_alive(pid):
                        raise RunLockedError(self.path, pid, host) from None
                    self._warn_stale(pid)
                    self.path.unlink(missing_ok=True)
                    continue
                break
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunLockedError(self.path, *self._holder()) from None
            try:  # the file we locked must still be the one at the path (a releaser may have unlinked it)
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                pid, _ = self._holder()
                if pid is not None and pid != os.getpid():
                    self._warn_stale(pid)
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def _warn_stale(self, pid: int | None) -> None:
        print(
            f"genlab: taking over the stale lock {str(self.path)!r} of pid {pid}, which no longer runs",
            file=sys.stderr,
            flush=True,
        )

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op if not held)."""
        if self._fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None
