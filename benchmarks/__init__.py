"""Benchmarks of InstaShare: scripts that print figures, run from the repository root as
``uv run python -m benchmarks.<name>`` (see benchmarks/README.md)."""
