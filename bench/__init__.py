"""Benchmarks (not run by the test suite). Each prints its figures and writes bench/reports/<name>.md."""
