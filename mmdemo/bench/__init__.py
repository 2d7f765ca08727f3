"""Benchmarks: ``python -m mmdemo bench NAME``. Each reports ratios against a baseline measured
in the same run and can write its table into docs/benchmarks.md (``--write``)."""
