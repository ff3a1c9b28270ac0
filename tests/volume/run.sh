#!/usr/bin/env bash
# Tests of crates/model/scripts/volume_backup.sh (the backups of generic products' volumes) with
# busybox alone on PATH, as in the busybox image the backup Jobs run by default (Debian's
# busybox-static, installed by tests/setup.sh). Arguments go to unittest (e.g. one test).
#
#   tests/volume/run.sh [test_volume_backup.VolumeBackupTest.test_prune ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=$(date +%s)
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
[ $# -gt 0 ] || set -- test_volume_backup
status=0
"${MUTU_PYTHON:-python3}" -m unittest -v "$@" || status=$?
echo "==> tests/volume: $(($(date +%s) - started)) s"
exit "$status"
