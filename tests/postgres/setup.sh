#!/usr/bin/env bash
# PostgreSQL's server and client programs for tests/postgres, installed from Debian's packages
# when missing (apt-get, as root or through sudo). Idempotent: with PostgreSQL there, it only looks.
#
#   tests/postgres/setup.sh     # progress on stderr; the programs' directory: last line of stdout
#
# MUTU_PG_BIN=DIR uses the programs in DIR (initdb, pg_ctl, postgres, psql, pg_dump, pg_restore)
# instead. Installing Debian's `postgresql` also creates its own cluster (15/main on bookworm),
# which the tests never use (and which is started only where services start on install).
set -euo pipefail

programs=(initdb pg_ctl postgres psql pg_dump pg_restore)

complete() {
  local p
  for p in "${programs[@]}"; do
    [ -x "$1/$p" ] || return 1
  done
}

# Debian's layout first (the newest major version), then the directory of an initdb on PATH.
find_bindir() {
  local d
  if [ -n "${MUTU_PG_BIN:-}" ]; then
    complete "$MUTU_PG_BIN" && echo "$MUTU_PG_BIN"
    return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
    if complete "$d"; then
      echo "$d"
      return
    fi
  done
  if command -v initdb >/dev/null; then
    d="$(dirname "$(readlink -f "$(command -v initdb)")")"
    complete "$d" && echo "$d"
  fi
}

bindir="$(find_bindir || true)"
if [ -n "$bindir" ]; then
  echo "==> PostgreSQL is installed: $bindir" >&2
  echo "$bindir"
  exit 0
fi
if [ -n "${MUTU_PG_BIN:-}" ]; then
  echo "MUTU_PG_BIN=$MUTU_PG_BIN does not have all of ${programs[*]}" >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "PostgreSQL is missing and installing it needs root: apt-get install postgresql" >&2
    exit 1
  fi
fi
command -v apt-get >/dev/null || {
  echo "PostgreSQL is missing and there is no apt-get: install PostgreSQL, or set MUTU_PG_BIN" >&2
  exit 1
}
started=$(date +%s)
echo "==> installing PostgreSQL with apt-get (Debian's postgresql package)" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
bindir="$(find_bindir || true)"
if [ -z "$bindir" ]; then
  echo "apt-get installed postgresql, but no directory has all of ${programs[*]}" >&2
  exit 1
fi
echo "==> PostgreSQL installed in $(($(date +%s) - started)) s: $bindir" >&2
echo "$bindir"
