"""``python -m genlab``."""

from genlab.cli import main

raise SystemExit(main())
