"""`bench.decoding` measures in-process decoding with the malloc settings the API runs with."""

from __future__ import annotations

from bench.decoding import API_MALLOC
from cxr.service_commands import MALLOC_ENV


def test_the_benchmark_runs_with_the_api_malloc_settings() -> None:
    assert API_MALLOC == MALLOC_ENV  # a copy: the benchmarks do not import the command line
