#!/usr/bin/env bash
# Tests of the scripts mutu's Jobs run inside a Plone image (crates/model/scripts), against a
# real Plone installed from PyPI. Works from any directory; extra arguments go to pytest.
#
#   tests/plone/run.sh [PYTEST ARGS...]
#
# Exit status is pytest's (or setup-venv.sh's when the venv cannot be built).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(bash "$here/setup-venv.sh" | tail -n 1)"
cd "$here"
# No .pytest_cache or __pycache__ left in the source tree.
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$here" "$@"
