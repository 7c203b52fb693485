"""Your own images: a folder of PNG/JPEG files (optionally one sub-folder per class) as a genlab dataset.

:class:`ImageFolder` reads every image file under ``root`` with Pillow, converts it to grey (``"L"``) or RGB,
optionally resizes (shorter side to ``size``, bicubic) and centre-crops to ``size × size``, and scales pixel
values ``v ∈ {0, …, 255}`` to ``v/127.5 − 1 ∈ [−1, 1]``; items are ``(C, H, W)`` tensors. With class
sub-folders (``root/<class>/*.png``) the labels are the sorted sub-folder names' indices.

:class:`PairedImageFolder` reads two folders whose files share names (``source/a.png`` ↔ ``target/a.png``) as
``(x0, x1)`` pairs for bridges: ``x0`` from ``source`` (condition/corrupted), ``x1`` from ``target``.

Everything is loaded into memory once (in sorted path order, so the same folder always gives the same tensors);
this is meant for the folder sizes a CPU or single-GPU run trains on. Errors name the file and the fix: an empty
folder, an unreadable or corrupt file, images of different sizes without ``size=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from genlab.data.datasets import ArrayDataset

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "PairedImageFolder", "list_images", "read_image"]

#: File suffixes read as images (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _pil():  # the PIL.Image module
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow comes with scikit-image / matplotlib
        raise ModuleNotFoundError("image folders are read with Pillow; pip install pillow") from err
    return Image


def list_images(root: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (suffix in :data:`IMAGE_EXTENSIONS`), sorted; hidden files skipped.

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        ValueError: If it holds no image file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    it = root.rglob("*") if recursive else root.iterdir()
    files = sorted(
        p
        for p in it
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise ValueError(
            f"image folder {str(root)!r} holds no image file (looked for {', '.join(IMAGE_EXTENSIONS)}"
            f"{' in it and its sub-folders' if recursive else ''}); put PNG/JPEG files there"
        )
    return files


def read_image(
    path: str | Path, *, channels: Literal[1, 3] = 3, size: int | None = None
) -> Tensor:
    """One image file as a float64 ``(C, H, W)`` tensor in ``[-1, 1]``.

    Args:
        path: Image file.
        channels: 1 (grey, Pillow mode ``"L"``) or 3 (RGB).
        size: If given, resize so the shorter side is ``size`` (bicubic) and centre-crop to ``size × size``.

    Raises:
        ValueError: If the file cannot be decoded (the message names it).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels!r}")
    image_mod = _pil()
    path = Path(path)
    try:
        with image_mod.open(path) as im:
            im.load()
            im = im.convert("L" if channels == 1 else "RGB")
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise ValueError(
            f"cannot read image {str(path)!r} ({type(err).__name__}: {err}); remove or replace the file"
        ) from err
    if size is not None:
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), resample=image_mod.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
    arr = np.asarray(im, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy()) / 127.5 - 1.0


def _stack(paths: Sequence[Path], *, channels: int, size: int | None, root: Path) -> Tensor:
    images = [read_image(p, channels=channels, size=size) for p in paths]  # type: ignore[arg-type]
    shapes = {tuple(x.shape[1:]) for x in images}
    if len(shapes) > 1:
        first = images[0].shape[1:]
        odd = next(p for p, x in zip(paths, images) if x.shape[1:] != first)
        raise ValueError(
            f"images in {str(root)!r} have different sizes ({sorted(shapes)[:4]}, e.g. {paths[0].name} is "
            f"{tuple(first)} but {odd.name} is {tuple(read_image(odd, channels=channels).shape[1:])}); pass "
            "size=<side> to resize and centre-crop every image to size x size"
        )
    return torch.stack(images)


def _check_options(size: int | None, channels: int, dtype: torch.dtype, cls: str) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"{cls}: size must be a positive int or None (keep the files' size); got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"{cls}: channels must be 1 (grey) or 3 (RGB); got {channels!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{cls}: dtype must be a floating torch dtype; got {dtype!r}")


class ImageFolder(ArrayDataset):
    """A folder of images as a dataset. Items: ``x1`` ``(C, size, size)`` in ``[-1, 1]``, or ``(x1, label)``.

    Layouts: ``root/*.png`` (no labels), or ``root/<class>/*.png`` with ``labels=True`` (class index = position
    of the sub-folder name in sorted order; ``self.classes`` lists them). ``extras["index"]`` holds each item's
    position in ``self.files``.

    Args:
        root: Folder to read.
        size: Resize (shorter side, bicubic) and centre-crop to ``size × size``; ``None`` keeps the files'
            size, which must then be the same for all files.
        channels: 1 (grey) or 3 (RGB).
        labels: Use class sub-folders as labels (returned with each item).
        dtype: Floating dtype.

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: empty folder, unreadable file, mixed sizes without ``size``, ``labels=True`` with files
            outside class sub-folders.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        size: int | None = None,
        channels: Literal[1, 3] = 3,
        labels: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        _check_options(size, channels, dtype, "ImageFolder")
        root = Path(root)
        files = list_images(root)
        x1 = _stack(files, channels=channels, size=size, root=root).to(dtype)
        extras = {"index": torch.arange(len(files))}
        self.root = root
        self.files: tuple[Path, ...] = tuple(files)
        self.classes: tuple[str, ...] = ()
        if labels:
            loose = [f for f in files if f.parent == root]
            if loose:
                raise ValueError(
                    f"ImageFolder(labels=True) expects root/<class>/<image>, but {loose[0].name} lies directly "
                    f"in {str(root)!r}; move it into a class sub-folder or pass labels=False"
                )
            self.classes = tuple(sorted({f.relative_to(root).parts[0] for f in files}))
            lab = torch.tensor([self.classes.index(f.relative_to(root).parts[0]) for f in files])
            super().__init__(x1, lab, item_names=("x1", "label"), extras=extras)
        else:
            super().__init__(x1, item_names=("x1",), extras=extras)


class PairedImageFolder(ArrayDataset):
    """Two folders of images paired by file name, for bridges. Items: ``(x0, x1)``.

    ``x0`` comes from ``source`` (condition / corrupted image), ``x1`` from ``target`` (clean image); the file
    ``source/<rel>`` is paired with ``target/<rel>`` up to the suffix (``a.jpg`` ↔ ``a.png`` pair).

    Args:
        source: Folder of the ``x0`` images.
        target: Folder of the ``x1`` images.
        size: Resize and centre-crop both sides to ``size × size`` (``None``: keep, sizes must agree).
        channels: Channels of ``x1`` (1 or 3).
        source_channels: Channels of ``x0`` (default ``channels``).
        dtype: Floating dtype.

    Raises:
        ValueError: As :class:`ImageFolder`, and when a file has no partner (the message names it).
    """

    def __init__(
        self,
        source: str | Path,
        target: str | Path,
        *,
        size: int | None = None,
        channels: Literal[1, 3] = 3,
        source_channels: Literal[1, 3] | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        _check_options(size, channels, dtype, "PairedImageFolder")
        src_ch = channels if source_channels is None else source_channels
        _check_options(size, src_ch, dtype, "PairedImageFolder(source_channels)")
        source, target = Path(source), Path(target)

        def keyed(root: Path) -> dict[Path, Path]:
            out: dict[Path, Path] = {}
            for f in list_images(root):
                key = f.relative_to(root).with_suffix("")
                if key in out:
                    raise ValueError(
                        f"{str(root)!r} holds two images named {str(key)!r} ({out[key].name}, {f.name}); "
                        "pairs are matched by name, keep one"
                    )
                out[key] = f
            return out

        src, tgt = keyed(source), keyed(target)
        for a, b, name_a, name_b in ((src, tgt, source, target), (tgt, src, target, source)):
            missing = sorted(set(a) - set(b))
            if missing:
                raise ValueError(
                    f"{len(missing)} image(s) in {str(name_a)!r} have no partner of the same name in "
                    f"{str(name_b)!r} (e.g. {str(missing[0])!r}); add or remove them"
                )
        keys = sorted(src)
        x0 = _stack([src[k] for k in keys], channels=src_ch, size=size, root=source).to(dtype)
        x1 = _stack([tgt[k] for k in keys], channels=channels, size=size, root=target).to(dtype)
        if x0.shape[2:] != x1.shape[2:]:
            raise ValueError(
                f"source images are {tuple(x0.shape[2:])} but target images are {tuple(x1.shape[2:])}; pass "
                "size=<side> so both are resized to size x size"
            )
        super().__init__(x0, x1, item_names=("x0", "x1"), extras={"index": torch.arange(len(keys))})
        self.names: tuple[str, ...] = tuple(str(k) for k in keys)
