#!/usr/bin/env bash
# Install what is missing (scripts/install-deps.sh), then run the test suite:
#   scripts/test.sh [pytest arguments...]
# Exits non-zero when a test fails, and also when no test ran at all (none collected, or
# every one skipped). NBDTUI_SKIP_INSTALL=1 skips the install step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${NBDTUI_SKIP_INSTALL:-}" ]; then
    bash scripts/install-deps.sh
fi

if [ -n "${NBDTUI_PYTHON:-}" ]; then
    python="$NBDTUI_PYTHON"
elif [ -x .venv/bin/python ]; then
    python=.venv/bin/python
else
    python=python3
fi

# tests/conftest.py turns "passed with nothing run" into exit status 5 when this is set.
export NBDTUI_REQUIRE_TESTS=1
exec "$python" -m pytest -q "$@"
