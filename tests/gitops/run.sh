#!/usr/bin/env bash
# Tests of the Argo CD health check of mutu's kinds (docs/gitops/argocd-health.lua), run in
# real Lua with lupa, and of docs/gitops/argocd-cm.yaml being rendered from it. Works from any
# directory; extra arguments go to the test (-v lists every case with its verdict).
#
#   tests/gitops/run.sh [-v]
#
# The virtualenv lives at ${MUTU_CACHE:-$HOME/.cache/mutu}/gitops-venv-<key>, where <key>
# hashes requirements.txt and the Python interpreter (MUTU_PYTHON, default python3): change
# either and a new venv is built next to the old one. It is built once, in its own directory
# gitops-venv-<key>.build-<pid>, and published by renaming a symlink onto gitops-venv-<key>:
# an interrupted build is never used. Once it exists the script prints only the test's output.
#
# Exit status is the test's (or pip's when the venv cannot be built).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/requirements.txt"
python="${MUTU_PYTHON:-python3}"
cache="${MUTU_CACHE:-$HOME/.cache/mutu}"

interpreter="$("$python" -c 'import sys, platform; print(sys.version, platform.machine())')"
key="$( { cat "$requirements"; echo "$interpreter"; } | sha256sum | cut -c1-16)"
venv="$cache/gitops-venv-$key"

usable() {
  [ -f "$venv/.mutu-complete" ] && "$venv/bin/python" -c 'import lupa' >/dev/null 2>&1
}

if ! usable; then
  mkdir -p "$cache"
  # One build at a time; whoever waited finds the venv the other one built.
  exec 9>"$cache/gitops-venv.lock"
  flock 9
  if ! usable; then
    # Builds interrupted earlier (none can be running: we hold the lock).
    for stale in "$venv".build-*; do
      if [ -d "$stale" ] && [ "$(readlink "$venv" 2>/dev/null)" != "$(basename "$stale")" ]; then
        rm -rf "$stale"
      fi
    done
    build="$venv.build-$$"
    rm -rf "$build"
    trap 'rm -rf "$build"' EXIT
    echo "==> building the gitops test venv in $build" >&2
    "$python" -m venv "$build" >&2
    "$build/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
      -r "$requirements" >&2
    "$build/bin/python" -c 'import lupa' >&2
    touch "$build/.mutu-complete"
    # Publish: rename a fresh symlink onto the venv's path (atomic), then drop what it replaced.
    old="$(readlink "$venv" 2>/dev/null || true)"
    [ -e "$venv" ] && [ ! -L "$venv" ] && rm -rf "$venv" # a plain directory from elsewhere
    ln -s "$(basename "$build")" "$venv.link-$$"
    mv -T "$venv.link-$$" "$venv"
    trap - EXIT
    if [ -n "$old" ] && [ "$old" != "$(basename "$build")" ]; then
      rm -rf "${cache:?}/$old"
    fi
    echo "==> venv ready: $venv" >&2
  fi
  exec 9>&-
fi

# No __pycache__ left in the source tree.
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/test_argocd_health.py" "$@"
