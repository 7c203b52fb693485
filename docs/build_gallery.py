"""Build the gallery: run every page under ``docs/gallery/`` and write its Markdown with the code and pictures.

    python docs/build_gallery.py                 # full size (minutes on a CPU); writes docs/gallery/*.md + PNGs
    python docs/build_gallery.py --quick --out /tmp/gallery   # CI size (seconds): checks every page still runs

A page is a Python file whose module docstring is its text (Markdown) and whose ``run(out, *, quick)`` returns
the pictures it wrote. The Markdown shows the docstring, the code (the file without its docstring), what the
page printed, the pictures and the wall time; ``docs/README.md`` indexes the pages.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("train", "samplers", "inverse", "bridges")
TITLES = {
    "train": "Train, sample and evaluate a generator",
    "samplers": "Swap samplers with one argument",
    "inverse": "Solve an inverse problem with a trained prior",
    "bridges": "Translate paired images with a diffusion bridge",
}


def _load(name: str) -> object:
    path = ROOT / "docs" / "gallery" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"genlab_gallery_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_without_docstring(path: Path) -> str:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        lines = source.splitlines()
        source = "\n".join(lines[first.end_lineno :]).lstrip("\n")
    return source


def build_page(name: str, out: Path, *, quick: bool) -> dict[str, object]:
    """Run page ``name`` with pictures under ``out``; return its record (pictures, printed text, seconds)."""
    module = _load(name)
    if out.is_dir():
        shutil.rmtree(out)  # the page's own work folder: every build trains afresh
    out.mkdir(parents=True)
    buffer = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        pictures = [Path(p) for p in module.run(out, quick=quick)]  # type: ignore[attr-defined]
    seconds = time.perf_counter() - t0
    return {"name": name, "doc": module.__doc__ or "", "pictures": pictures, "printed": buffer.getvalue(),
            "seconds": seconds}


def write_markdown(record: dict[str, object], folder: Path, *, quick: bool) -> Path:
    """Write ``<folder>/<name>.md`` with the page's text, code, output and pictures (copied next to it)."""
    name = str(record["name"])
    lines = [str(record["doc"]).strip(), ""]
    lines += ["```python", _code_without_docstring(ROOT / "docs" / "gallery" / f"{name}.py").rstrip(), "```", ""]
    printed = str(record["printed"]).strip()
    if printed:
        lines += ["Output:", "", "```text", printed, "```", ""]
    for pic in record["pictures"]:  # type: ignore[attr-defined]
        target = folder / f"{name}_{Path(pic).name}" if Path(pic).parent != folder else Path(pic)
        if Path(pic).resolve() != target.resolve():
            shutil.copyfile(pic, target)
        lines += [f"![{Path(pic).stem}]({target.name})", ""]
    size = "CI size (--quick)" if quick else "full size"
    where = "this machine" if quick else "a 2-core CPU"
    lines += [f"*Built by `python docs/build_gallery.py` ({size}) in {record['seconds']:.0f} s on {where}.*", ""]
    path = folder / f"{name}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size: seconds per page")
    parser.add_argument("--out", default=None, help="folder for the pages (default docs/gallery)")
    parser.add_argument("--pages", nargs="*", default=list(PAGES), choices=PAGES)
    parser.add_argument("--work", default=None, help="folder for the runs (default out/gallery)")
    args = parser.parse_args(argv)
    folder = Path(args.out) if args.out else ROOT / "docs" / "gallery"
    work = Path(args.work) if args.work else (folder / "_runs" if args.out else ROOT / "out" / "gallery")
    folder.mkdir(parents=True, exist_ok=True)
    intro = ("One runnable page per use; each is a script under `docs/gallery/` that `python docs/build_gallery.py` "
             "runs (CI runs it at `--quick` size).")
    index = ["# genlab gallery", "", intro, ""]
    for name in args.pages:
        record = build_page(name, work / name, quick=args.quick)
        page = write_markdown(record, folder, quick=args.quick)
        print(f"{name}: {record['seconds']:.1f} s -> {page}", file=sys.stderr)
        index.append(f"- [{TITLES[name]}](gallery/{page.name}) ({record['seconds']:.0f} s)")
    if not args.out:
        (ROOT / "docs" / "README.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
