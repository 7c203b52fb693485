"""The gallery builds at CI size: every page runs through the public API and writes its pictures and Markdown."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def test_gallery_builds_quick(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_gallery", ROOT / "docs" / "build_gallery.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert build.main(["--quick", "--out", str(tmp_path)]) == 0
    for name in build.PAGES:
        page = (tmp_path / f"{name}.md").read_text()
        pictures = [line for line in page.splitlines() if line.startswith("![")]
        assert pictures, name
        for line in pictures:
            assert (tmp_path / line.split("(")[1].rstrip(")")).stat().st_size > 1000
