"""Reasoning benchmarks (transfer): data, grading, and running them; no game is involved."""
