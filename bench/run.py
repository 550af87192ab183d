#!/usr/bin/env python3
"""``python bench/run.py ...`` is ``python -m bench ...`` (kept for older commands)."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    # Import the package ``bench`` from the repository root, not its files as top-level
    # modules (``markdown``, ``results``... would shadow installed packages).
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(here))
    from bench.runner import main

    sys.exit(main())
