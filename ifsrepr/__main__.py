"""``python -m ifsrepr`` (what ``torchrun -m ifsrepr train ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
