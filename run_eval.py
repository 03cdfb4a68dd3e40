#!/usr/bin/env python
"""Thin entry point: see qmamba_eval/cli.py (python run_eval.py --help)."""

import sys

from qmamba_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
