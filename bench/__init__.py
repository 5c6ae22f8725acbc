"""Benchmarks: each prints its figures (and writes raw numbers as JSON under bench/results/); none fails a test."""
