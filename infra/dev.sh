#!/usr/bin/env bash
# The README's two commands, each setting up the project virtualenv first if needed:
#   bash infra/dev.sh demo [crucible run options]   # the whole pipeline on the built-in demo
#   bash infra/dev.sh test [pytest options]         # lint, types, the docs site build and the test suite
#   bash infra/dev.sh docs                          # serve the documentation site at http://127.0.0.1:8000
#   bash infra/dev.sh coverage [pytest options]     # the test suite under coverage
#   bash infra/dev.sh structure [--top N]           # the largest functions and the import layers
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CRUCIBLE_VENV:-.venv}"
export NO_MKDOCS_2_WARNING=1  # Material's notice about its successor, printed on every build

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        py="$(command -v python3.11 || command -v python3)"
        if ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "error: Crucible needs Python 3.11 (found $("$py" --version 2>&1)); install python3.11" >&2
            exit 2
        fi
        "$py" -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changes.
    stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "installing Crucible and its pinned dependencies into $VENV (a few minutes the first time)"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-compile -e '.[test]'
        # pip byte-compiles one file at a time; compileall uses every core. (A few files in some
        # packages' test data are not Python 3 and fail to compile, under pip as here.)
        "$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null 2>&1 || true
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
}

# Lint and format first (a second), the documentation site built with --strict (a broken link or
# a page missing from the nav fails the command, a second or two), then every test tier on two pytest-xdist workers, whole
# files per worker so module fixtures are built once, the 25 slowest tests listed at the end.
# mypy (about 40 s of one core, from a cold cache) checks the package meanwhile; its verdict
# fails the command like a failed test. Arguments go to pytest (-n 0 runs in one process).
run_tests() {
    "$VENV/bin/ruff" check --quiet .
    "$VENV/bin/ruff" format --check --quiet .
    # Not `-q`: in MkDocs 1.6 it hides the warnings from --strict too, which then passes anything.
    docs_log="$(mktemp)"
    if ! "$VENV/bin/mkdocs" build --strict -f infra/mkdocs.yml > "$docs_log" 2>&1; then
        grep -v '^INFO' "$docs_log" >&2 || true
        rm -f "$docs_log"
        echo "error: the documentation site does not build with --strict (above; bash infra/dev.sh docs to preview)" >&2
        return 1
    fi
    rm -f "$docs_log"
    # pip byte-compiled the dependencies; the project's own modules are compiled here, once,
    # for the hundreds of processes the tests start (Python writes no cache where
    # PYTHONDONTWRITEBYTECODE is set, and would otherwise compile them in every one).
    "$VENV/bin/python" -m compileall -q -j 0 flows tasks models infra tests >/dev/null
    types_log="$(mktemp)"
    "$VENV/bin/mypy" > "$types_log" 2>&1 &
    types_pid=$!
    status=0
    "$VENV/bin/python" -m pytest -n "${CRUCIBLE_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
        --durations=25 "$@" || status=$?
    types=0
    wait "$types_pid" || types=$?
    cat "$types_log"
    rm -f "$types_log"
    if [ "$types" -ne 0 ]; then
        echo "error: mypy found type errors (above)" >&2
        [ "$status" -ne 0 ] || status=1
    fi
    return "$status"
}

# The suite under coverage: every Python process it starts (xdist workers, the crucible CLI,
# training ranks, Ray workers) measures itself through coverage's subprocess patch
# (pyproject.toml); the data is combined, then reported per module, lowest first.
run_coverage() {
    export COVERAGE_FILE="$PWD/.coverage"
    rm -f .coverage .coverage.*
    status=0
    "$VENV/bin/coverage" run -m pytest -n "${CRUCIBLE_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
        "$@" || status=$?
    "$VENV/bin/coverage" combine --quiet
    "$VENV/bin/coverage" report --sort=cover
    return "$status"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    demo) setup; exec "$VENV/bin/crucible" run "$@" ;;
    test) setup; run_tests "$@" ;;
    coverage) setup; run_coverage "$@" ;;
    docs) setup; exec "$VENV/bin/mkdocs" serve -f infra/mkdocs.yml -a 127.0.0.1:8000 "$@" ;;
    setup) setup ;;
    structure) setup; exec "$VENV/bin/python" -m tests.code_structure "$@" ;;
    *) echo "usage: bash infra/dev.sh {demo|test|coverage|docs|setup|structure} [args...]" >&2; exit 2 ;;
esac
