"""Launchers: sweeps of runs (locally, on Ray, in Docker) and benchmarks."""
