"""The error cases of the bad-input corpus (tests/fixtures/bad_inputs/make.py) through
`crucible`'s own entry point (`infra.app.cli.main`, what the console script calls): config
YAML, Parquet inputs, input folders and fastText models here; a finished run's tokenizer,
token shards, checkpoints, benchmark files and review sheets on copies of the session's run.

Each must end with exit status 2 and a message naming the file and the fix, no traceback,
within a time limit (a hang fails the case), before anything is started or written."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.app.cli import main
from tests import services
from tests.fixtures.bad_inputs import make

LIMIT_S = 30  # each case is refused within a second or two; a hang or a started run takes longer


@contextlib.contextmanager
def time_limit(seconds: int, what: str) -> Iterator[None]:
    def expire(signum, frame):
        raise TimeoutError(f"{what} did not end within {seconds} s")

    # pytest-timeout's own alarm (900 s) shares the one timer: put back what is left of it.
    previous = signal.signal(signal.SIGALRM, expire)
    outer, started = signal.alarm(seconds), time.monotonic()
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous)
        signal.alarm(max(1, outer - int(time.monotonic() - started)) if outer else 0)


def refused(case: make.Case, path: Path, run: Path, capsys) -> str:
    """Run the case's command; assert the outcome every error case must have; return stderr."""
    capsys.readouterr()
    with time_limit(LIMIT_S, case.kind):
        code = main(case.argv(path, run))
    err = capsys.readouterr().err
    assert code == 2, f"{case.kind}: exit {code}\n{err[-2000:]}"
    assert "Traceback" not in err
    message = err[err.index("error: ") :]
    assert str(path) in message, f"{case.kind}: the file is not named: {message}"
    assert case.fix in message, f"{case.kind}: the fix ({case.fix}) is not given: {message}"
    return message


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return make.make_corpus(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("case", make.ERRORS, ids=lambda c: c.kind)
def test_a_bad_config_or_input_is_refused_before_anything_starts(case, corpus, tmp_path, capsys):
    runs = tmp_path / "runs"
    refused(case, corpus[case.kind], runs, capsys)
    assert not (runs / "bad").exists()  # no run directory, so nothing to clean up or resume


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("case", make.RUN_ERRORS, ids=lambda c: c.kind)
def test_a_damaged_file_of_a_run_is_refused_and_the_run_left_as_it_was(case, pipeline_run, tmp_path, capsys):
    run = pipeline_run.copy(tmp_path / "r", upto=case.upto).root
    path = case.make(run)
    before = services.snapshot(run)
    refused(case, path, run, capsys)
    assert services.snapshot(run) == before
