"""``python -m qmamba_eval.cli ...``: the same as ``run_eval.py ...`` (used by ``train-many``'s processes)."""

import sys

from . import main

sys.exit(main())
