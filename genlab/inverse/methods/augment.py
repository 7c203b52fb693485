"""Shared differentiable augmentations ("DiffuseAugment" of Dreamguider, in the style of DiffAugment).

Dreamguider (Nair & Patel, arXiv 2406.02549) applies the *same* random differentiable transforms to the
prediction and to the condition before computing the guidance loss. The exact transform set of the paper was not
recovered; this module implements DiffAugment's (Zhao et al., NeurIPS'20, ``DiffAugment_pytorch.py``) ops with
their default ranges, sampled once per call of :meth:`DiffuseAugment.sample` and applied identically to both
inputs through :meth:`DiffuseAugment.apply`:

* ``"brightness"``: ``v + b``, ``b ~ U(−0.5, 0.5)`` per sample;
* ``"contrast"``: ``(v − mean) · c + mean``, ``c ~ U(0.5, 1.5)`` (mean over the non-batch dims);
* ``"translation"`` (images): integer shift by up to ``translation_ratio``·size in each direction, zero fill;
* ``"cutout"``: a zeroed square of side ``cutout_ratio``·size (images), or a random ``cutout_ratio`` fraction of
  the coordinates (vectors);
* ``"flip"`` (images): horizontal flip with probability 1/2.

Ops that need an image layout are skipped for vectors. Every op is differentiable in its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from genlab.utils import RandomSource, rand_per_sample

__all__ = ["AUGMENT_OPS", "AugmentParams", "DiffuseAugment"]

AUGMENT_OPS: tuple[str, ...] = ("brightness", "contrast", "translation", "cutout", "flip")
_IMAGE_ONLY = ("translation", "flip")


@dataclass
class AugmentParams:
    """Random parameters of one augmentation draw (shared by prediction and condition).

    Attributes:
        values: Per-op parameter tensors (per sample).
        ops: The ops applied, in order.
    """

    values: dict[str, Tensor] = field(default_factory=dict)
    ops: tuple[str, ...] = ()


class DiffuseAugment:
    """DiffAugment-style differentiable augmentations with parameters shared across inputs.

    Args:
        ops: Ops to apply, in order (subset of :data:`AUGMENT_OPS`).
        translation_ratio: Max shift as a fraction of the image size (DiffAugment: 1/8).
        cutout_ratio: Cutout side as a fraction of the size (DiffAugment: 1/2); fraction of dropped coordinates
            for vectors.
    """

    def __init__(
        self,
        ops: Sequence[str] = ("translation", "cutout"),
        *,
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        ops = tuple(ops)
        bad = [o for o in ops if o not in AUGMENT_OPS]
        if bad:
            raise ValueError(f"unknown augmentation op(s) {bad}; choose from {AUGMENT_OPS}")
        if not 0 <= translation_ratio < 1 or not 0 <= cutout_ratio < 1:
            raise ValueError("translation_ratio and cutout_ratio must lie in [0, 1)")
        self.ops = ops
        self.translation_ratio = float(translation_ratio)
        self.cutout_ratio = float(cutout_ratio)

    def applicable(self, like: Tensor) -> tuple[str, ...]:
        """Ops that apply to tensors shaped like ``like`` (image-only ops need ``(B, C, H, W)``)."""
        is_image = like.ndim == 4
        return tuple(o for o in self.ops if is_image or o not in _IMAGE_ONLY)

    def sample(self, like: Tensor, *, generator: RandomSource = None) -> AugmentParams:
        """Draw the parameters of one augmentation for a batch shaped like ``like``.

        Args:
            like: ``(B, C, H, W)`` images or ``(B, m)`` vectors (any ``(B, ...)`` for the value ops).
            generator: Per-sample streams, a generator or ``None``.

        Returns:
            :class:`AugmentParams`.
        """
        b, dev = like.shape[0], like.device

        def rand(*shape: int) -> Tensor:  # shape[0] is the batch
            return rand_per_sample((b, *shape[1:]), generator=generator, device=dev)

        ops = self.applicable(like)
        vals: dict[str, Tensor] = {}
        for op in ops:
            if op == "brightness":
                vals[op] = rand(b) - 0.5
            elif op == "contrast":
                vals[op] = rand(b) + 0.5
            elif op == "flip":
                vals[op] = rand(b) < 0.5
            elif op == "translation":
                h, w = like.shape[-2:]
                sh, sw = int(h * self.translation_ratio + 0.5), int(w * self.translation_ratio + 0.5)
                u = rand(b, 2)
                vals[op] = torch.stack([(u[:, 0] * (2 * sh + 1)).floor() - sh,
                                        (u[:, 1] * (2 * sw + 1)).floor() - sw], 1).long()
            elif op == "cutout":
                if like.ndim == 4:
                    h, w = like.shape[-2:]
                    u = rand(b, 2)
                    vals[op] = torch.stack([(u[:, 0] * h).floor(), (u[:, 1] * w).floor()], 1).long()
                else:
                    vals[op] = rand(*like.shape) >= self.cutout_ratio  # keep-mask
        return AugmentParams(values=vals, ops=ops)

    def apply(self, v: Tensor, params: AugmentParams) -> Tensor:
        """Apply one drawn augmentation (differentiable in ``v``).

        Args:
            v: Tensor shaped like the one the parameters were drawn for.
            params: Parameters from :meth:`sample`.

        Returns:
            The augmented tensor.
        """
        out = v
        nd = v.ndim
        view = (-1,) + (1,) * (nd - 1)
        for op in params.ops:
            p = params.values[op]
            if op == "brightness":
                out = out + p.to(out).view(view)
            elif op == "contrast":
                mean = out.flatten(1).mean(1).view(view)
                out = (out - mean) * p.to(out).view(view) + mean
            elif op == "flip":
                out = torch.where(p.view(view), out.flip(-1), out)
            elif op == "translation":
                out = _translate(out, p)
            elif op == "cutout":
                out = out * _cutout_mask(out, p, self.cutout_ratio)
        return out

    def config(self) -> dict:
        """Parameters (JSON-friendly)."""
        return {"ops": list(self.ops), "translation_ratio": self.translation_ratio, "cutout_ratio": self.cutout_ratio}

    def __repr__(self) -> str:
        return f"DiffuseAugment({self.config()})"


def _translate(x: Tensor, shifts: Tensor) -> Tensor:
    """Shift each image by integer ``(dy, dx)`` with zero fill."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    out = []
    for i in range(x.shape[0]):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        moved = torch.roll(x[i], shifts=(dy, dx), dims=(-2, -1))
        keep_r = ((rows - dy) >= 0) & ((rows - dy) < h)
        keep_c = ((cols - dx) >= 0) & ((cols - dx) < w)
        out.append(moved * (keep_r[:, None] & keep_c[None, :]).to(x.dtype))
    return torch.stack(out)


def _cutout_mask(x: Tensor, p: Tensor, ratio: float) -> Tensor:
    """Multiplicative keep-mask of the cutout op."""
    if x.ndim != 4:
        return p.to(x.dtype)
    h, w = x.shape[-2:]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    top = (p[:, 0] - ch // 2).view(-1, 1, 1)
    left = (p[:, 1] - cw // 2).view(-1, 1, 1)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return (~inside).to(x.dtype)[:, None]
