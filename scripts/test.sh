#!/usr/bin/env bash
# Install everything the tests need and run them: lint, the whole suite with the current
# openai SDK, then the SDK contract tests again with openai 1.x. Each step prints its count.
#
# The tests get virtual environments of their own (.venv-test, .venv-sdk1), created on the
# first run: the README's serving environment (.venv) is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n== %s\n' "$*"; }

# venv DIR REQUIREMENT...: create DIR once, then install the project's REQUIREMENTs into it.
venv() {
    local dir=$1
    shift
    [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q "$@"
}

step "install: .venv-test (the project with its test dependencies)"
venv .venv-test -e '.[test]'

# JavaScript clients for tests/contract/test_js_clients.py, and the runner of the Open
# Responses compliance suite for tests/compliance/test_compliance.py (both pinned by their
# package-lock.json; `npm ci` reuses npm's cache when offline).
if command -v npm >/dev/null && command -v node >/dev/null; then
    step "install: JavaScript clients and the compliance suite (npm ci)"
    (cd tests/contract/js && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
    (cd tests/compliance/suite && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
    # Codex CLI for tests/contract/test_codex_cli.py: a native binary in an optional package,
    # so a platform without one (or no registry) skips that test instead of failing the run.
    (cd tests/contract/codex && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) ||
        echo "SKIPPING the Codex CLI test: @openai/codex could not be installed"
    # Claude Code for tests/contract/test_claude_code.py: the same (its optional native package).
    (cd tests/contract/claude && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) ||
        echo "SKIPPING the Claude Code test: @anthropic-ai/claude-code could not be installed"
else
    step "SKIPPING the JavaScript client tests and the compliance suite: Node.js/npm not found"
fi

# Headless Chromium for tests/console/test_browser.py (the web console in a real browser).
# Installed with apt when missing; where apt-get is unavailable the browser tests skip. Once
# chromium is here, RESPGATE_REQUIRE_BROWSER makes those tests fail rather than skip.
if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    if command -v apt-get >/dev/null; then
        step "install: chromium and chromium-driver (apt-get)"
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        { $SUDO apt-get update -qq &&
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
                >/dev/null; } || echo "SKIPPING the browser tests: chromium could not be installed"
    else
        step "SKIPPING the browser tests: apt-get not found (install chromium and chromium-driver)"
    fi
fi
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    export RESPGATE_REQUIRE_BROWSER=1
fi

step "ruff: lint and format"
files=$(.venv-test/bin/ruff check --show-files src tests bench | grep -c '\.py$')
.venv-test/bin/ruff check --quiet src tests bench
echo "ruff check: $files files, no findings"
.venv-test/bin/ruff format --check src tests bench

step "pytest: the whole suite"
.venv-test/bin/python -m pytest "$@"

step "pytest: the SDK contract tests with openai 1.x (.venv-sdk1)"
venv .venv-sdk1 -e '.[test-base]' 'openai==1.109.1'
.venv-sdk1/bin/python -m pytest tests/contract -p no:cacheprovider
