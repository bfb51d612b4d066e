#!/usr/bin/env bash
# Install everything the tests need and run them: lint, the whole suite with
# the current openai SDK, then the SDK contract tests again with openai 1.x.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/python -m pytest "$@"

[ -x .venv-sdk1/bin/python ] || "$PY" -m venv .venv-sdk1
.venv-sdk1/bin/python -m pip install -q --upgrade pip
.venv-sdk1/bin/python -m pip install -q -e '.[test-base]' 'openai==1.109.1'
.venv-sdk1/bin/python -m pytest tests/contract -q -p no:cacheprovider
