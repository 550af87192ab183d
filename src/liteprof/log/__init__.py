"""The log file: its format and both its ends.

``format`` holds the constants of ``docs/FORMAT.md``; ``writer`` writes a file (standard
library only, used while recording); ``scan``, ``reader`` and ``text`` read binary and
vLLM text logs into the ``events.Events`` model (numpy).
"""
