"""Command line: thin shells over the Python API (``genlab <command> ...`` or ``python -m genlab ...``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from genlab.demo import run_exact_demo

    rows = run_exact_demo(args.out, n=args.n, steps=args.steps, seed=args.seed)
    print(json.dumps([r.__dict__ for r in rows], indent=1))
    print(f"wrote {args.out}/samples.png and {args.out}/summary.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``genlab`` sub-command."""
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the built-in demo and write a picture + summary")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genlab`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"genlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
