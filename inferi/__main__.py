"""`python -m inferi`: the inferi command line (inferi/cli.py)."""

from inferi.cli import main

raise SystemExit(main())
