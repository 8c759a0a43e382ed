"""A short fuzzing run of the input readers in every test run (tests/fuzz/readers.py); the
long run is benchmarks/fuzz_readers.py."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.readers import PROPERTIES


@pytest.mark.parametrize("reader", sorted(PROPERTIES))
def test_every_generated_input_is_read_or_counted(reader):
    strategy, check = PROPERTIES[reader]
    # derandomize: the same inputs in every run, so CI never fails on a draw it cannot repeat.
    run = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))(
        given(strategy)(check)
    )
    run()
