"""`python -m hatch_khal`: the `khal-gpu` command."""

import sys

from .cli import main

sys.exit(main())
