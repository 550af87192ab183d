"""liteprof's benchmarks: ``python -m bench`` from the repository root (bench/README.md).

``kernels`` (timeit-style loops, ``Timer``), ``rows`` (the rows the suites share),
``peers`` (other profilers), ``suites`` (one module per suite, ``SUITES``), ``context``
(what a suite's ``run`` gets), ``child`` (its subprocesses), ``results`` (targets, JSON,
the previous run), ``markdown`` (docs/BENCHMARKS.md), ``runner`` (the command line).
Importing ``bench`` imports nothing heavy.
"""
