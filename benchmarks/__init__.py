"""Benchmarks: each script writes benchmarks/results/<name>.{json,md}; `python -m benchmarks` runs them all."""
