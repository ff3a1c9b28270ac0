#!/usr/bin/env bash
# Benchmark of the ZODB backup and restore against plain repozo plus cp, in the Plone venv
# (tests/plone/bench_backup.py says what it measures). Not part of `make test`.
#
#   tests/plone/bench.sh            # 1 GB of blobs, 3 rounds
#   BLOB_MB=256 ROUNDS=1 tests/plone/bench.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(bash "$here/setup-venv.sh" | tail -n 1)"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/bench_backup.py"
