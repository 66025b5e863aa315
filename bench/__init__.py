"""Benchmarks: `make bench` (or `python -m bench`). See docs/benchmarks.md."""
