"""``genlab bench inverse``: the inverse-problem benchmarks.

``genlab bench inverse [gmm|digits|all] [options]`` runs ``bench_inverse_gmm.py`` (the default: the MCGdiff
Gaussian-mixture protocol against the exact posterior, with deepinv's DPS side by side) and/or
``bench_inverse_digits.py`` (held-out digits with trained priors); the remaining options go to the chosen script
(see its ``--help``). With ``all``, both run with their defaults.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_inverse_digits
import bench_inverse_gmm

SUITES = {"gmm": bench_inverse_gmm.main, "digits": bench_inverse_digits.main}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the GMM and/or digits benchmark."""
    args = list(sys.argv[1:] if argv is None else argv)
    suite = args.pop(0) if args and args[0] in (*SUITES, "all") else "gmm"
    if suite == "all":
        if args:
            raise SystemExit("genlab bench inverse all takes no options; run 'gmm' or 'digits' to pass options")
        return max(SUITES["gmm"]([]), SUITES["digits"]([]))
    return SUITES[suite](args)


if __name__ == "__main__":
    raise SystemExit(main())
