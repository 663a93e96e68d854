"""Helpers shared by the tests and the benchmarks in bench/ (not tests themselves)."""
