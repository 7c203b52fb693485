"""Progress bars for sampling, solving, evaluation and benchmarks: tqdm on rank 0 when stderr is a terminal.

``progress=None`` (the default everywhere) means *auto*: a bar only when stderr is a TTY and this process is
rank 0 (``RANK`` unset or ``0``), so logs, CI and torchrun workers stay clean; ``True`` forces a bar (e.g. in a
notebook), ``False`` never shows one. A bar is driven through the samplers' ``callback`` hook, so it costs
nothing inside the loops and composes with a user's own callback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["ProgressBar", "progress_enabled", "track"]

T = TypeVar("T")


def progress_enabled(progress: bool | None) -> bool:
    """Resolve ``progress``: ``None`` → a bar only on rank 0 with a terminal on stderr.

    Raises:
        TypeError: If ``progress`` is not a bool or ``None``.
    """
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None (auto); got {progress!r}")
    if progress is not None:
        return progress
    rank = os.environ.get("RANK", "0")
    return rank == "0" and bool(getattr(sys.stderr, "isatty", lambda: False)())


class ProgressBar:
    """A tqdm bar (or nothing) usable as a sampler ``callback``; a context manager that closes it.

    Args:
        total: Number of steps.
        desc: Label.
        progress: ``None`` (auto), ``True`` or ``False`` (see :func:`progress_enabled`).
        then: A user callback called after the bar is advanced.
    """

    def __init__(
        self, total: int | None, *, desc: str = "", progress: bool | None = None, then: Callable[[Any], None] | None = None
    ) -> None:
        self.then = then
        self.bar: Any = None
        if progress_enabled(progress):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)

    @property
    def active(self) -> bool:
        """Whether a bar is shown."""
        return self.bar is not None

    def __call__(self, info: Any = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if self.then is not None:
            self.then(info)

    def callback(self) -> Callable[[Any], None] | None:
        """What to pass as a sampler ``callback``: this bar, the user's callback, or ``None`` when neither."""
        if self.bar is None:
            return self.then
        return self

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressBar:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], *, desc: str = "", total: int | None = None, progress: bool | None = None) -> Iterator[T]:
    """Iterate ``items`` with a bar (benchmark loops, evaluation seeds); plain iteration when disabled."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with ProgressBar(total, desc=desc, progress=progress) as bar:
        for item in items:
            yield item
            bar()
