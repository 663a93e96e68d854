"""``python -m workbench``: the command line (:mod:`workbench.cli`)."""

from .cli import main

raise SystemExit(main())
