#!/usr/bin/env bash
# The README's two commands, each setting up the project virtualenv first if needed:
#   bash infra/dev.sh demo [crucible run options]   # the whole pipeline on the built-in demo
#   bash infra/dev.sh test [pytest options]         # the test suite
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CRUCIBLE_VENV:-.venv}"

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
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[test]'
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
    demo) setup; exec "$VENV/bin/crucible" run "$@" ;;
    test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
    setup) setup ;;
    *) echo "usage: bash infra/dev.sh {demo|test|setup} [args...]" >&2; exit 2 ;;
esac
