"""Benchmarks: harbor_confluence side by side with its peers and with bare httpx.

One entry point, ``python -m bench`` (``bash bench/run.sh`` creates the environments
first). Every scenario starts what it needs on loopback, measures several repetitions
after a warm-up, and reports medians, spreads and same-run ratios to
``bench/results/latest.md`` and ``bench/results/latest.json``. See ``bench/README.md``.
"""
