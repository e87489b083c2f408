"""Benchmarks whose output is recorded in BENCHMARKS.md (run as ``python -m bench.NAME``)."""
