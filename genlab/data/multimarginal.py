"""K data sets side by side, for multimarginal training (Albergo, Boffi, Lindsey & Vanden-Eijnden, ICLR'24).

Item ``i`` of :class:`MultimarginalDataset` is ``(xs, x1)``: ``xs`` of shape ``(K, *shape)`` whose row ``k`` is the
``i``-th sample of marginal ``k + 1`` (genlab's vertex 0 is the Gaussian, drawn by the coupling), and ``x1 =
xs[target − 1]``, the marginal that a run's default path (Gaussian → ``target``) generates, so sample pictures and
``genlab eval`` compare generated samples with that marginal's held-out data. Rows of different marginals are
not paired by meaning: each marginal is shuffled with its own seed, and
:class:`~genlab.couplings.MultimarginalCoupling` re-permutes every marginal independently inside each batch, so
the training draws are independent across marginals (the paper's independent coupling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genlab.data.datasets import ArrayDataset
from genlab.data.images import load_digits
from genlab.data.toys import TOY_NAMES, toy

__all__ = ["MultimarginalDataset", "marginal_names"]


def marginal_names() -> tuple[str, ...]:
    """Accepted marginal names: every 2-D toy and ``digits:<c>`` for a digit class ``c`` in 0..9."""
    return (*TOY_NAMES, "8gaussians", *(f"digits:{c}" for c in range(10)))


class MultimarginalDataset(ArrayDataset):
    """K marginals stacked per item: ``dataset[i] = (xs, x1)``, ``xs`` of shape ``(K, *shape)`` (module docstring).

    Marginals are all 2-D toys (``"moons"``, ``"8gaussians"``, ``"checkerboard"``, ...; ``n`` points each, toy
    ``k`` drawn with seed ``seed + k``) or all digit classes (``"digits:3"``: the 8×8 images of class 3 in
    [-1, 1], shape ``(1, 8, 8)``; every class is cut to the size of the smallest chosen class, ~175 images).
    ``extras["marginal_index"]`` is absent; ``self.marginals`` keeps the names in vertex order 1..K.

    Args:
        marginals: Names of the K ≥ 1 data marginals, in vertex order 1..K.
        n: Points per toy marginal (ignored for digits).
        seed: Seed of the toy draws and of the per-marginal shuffles.
        target: Vertex (1..K) repeated as the ``x1`` item: the end of the run's default path.
        dtype: Floating dtype.

    Raises:
        ValueError: An empty list, an unknown name, toys mixed with digits, or a bad ``target``.
    """

    def __init__(
        self,
        *,
        marginals: Sequence[str],
        n: int = 10_000,
        seed: int = 0,
        target: int = 1,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if isinstance(marginals, str) or not isinstance(marginals, Sequence) or len(marginals) == 0:
            raise ValueError(f"marginals must be a non-empty list of names (e.g. [moons, 8gaussians]); got {marginals!r}")
        names = [str(m) for m in marginals]
        unknown = [m for m in names if m not in marginal_names()]
        if unknown:
            raise ValueError(f"marginals: unknown name(s) {unknown}; choose toys {list(TOY_NAMES)} or digits:0..digits:9")
        digits = [m.startswith("digits:") for m in names]
        if any(digits) and not all(digits):
            raise ValueError(f"marginals must be all toys or all digit classes (one data shape); got {names}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an int >= 2; got {n!r}")
        gen = torch.Generator().manual_seed(int(seed))
        if all(digits):
            d = load_digits(dtype=dtype)
            parts = [d.images[d.labels == int(m.split(":")[1])] for m in names]
            size = min(p.shape[0] for p in parts)
            parts = [p[torch.randperm(p.shape[0], generator=gen)[:size]] for p in parts]
        else:
            parts = [
                toy(m, n, generator=torch.Generator().manual_seed(int(seed) + k), dtype=dtype)
                for k, m in enumerate(names)
            ]
            parts = [p[torch.randperm(p.shape[0], generator=gen)] for p in parts]
        if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= len(names):
            raise ValueError(f"target must be a data vertex in 1..{len(names)} (the default path's end); got {target!r}")
        xs = torch.stack(parts, dim=1)
        super().__init__(xs, xs[:, target - 1].clone(), item_names=("xs", "x1"))
        self.marginals: tuple[str, ...] = tuple(names)

    @property
    def K(self) -> int:
        """Number of data marginals."""
        return int(self.tensors[0].shape[1])
