#!/usr/bin/env bash
# Tests of crates/model/scripts/pg_backup.sh (the backups of RelStorage sites) against a real
# PostgreSQL server, installed from Debian's packages when missing (setup.sh), run by the tests
# themselves on 127.0.0.1 (a free port) in a temporary directory, and removed at the end. Works
# from any directory; arguments go to unittest instead of the whole module (e.g. one test).
#
#   tests/postgres/run.sh [test_pg_backup.PgBackupTest.test_prune ...]
#
# Exit status is unittest's (or setup.sh's when PostgreSQL cannot be installed).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$(date +%s)
bindir="$(bash "$here/setup.sh" | tail -n 1)"
echo "==> $("$bindir/postgres" --version), client $("$bindir/pg_dump" --version)"
export MUTU_PG_BIN="$bindir"
# No __pycache__ left in the source tree.
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
[ $# -gt 0 ] || set -- test_pg_backup
status=0
"${MUTU_PYTHON:-python3}" -m unittest -v "$@" || status=$?
echo "==> tests/postgres: $(($(date +%s) - started)) s"
exit "$status"
