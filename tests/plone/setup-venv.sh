#!/usr/bin/env bash
# The virtualenv with a real Plone (and pytest) that tests/plone runs against, built once.
#
#   tests/plone/setup-venv.sh     # progress on stderr; the venv's path: last line of stdout
#
# It lives at ${MUTU_CACHE:-$HOME/.cache/mutu}/plone-venv-<key>, where <key> hashes
# constraints.txt, this script and the Python interpreter (MUTU_PYTHON, default python3): change
# any of them and a new venv is built next to the old one. A venv cannot be moved once built
# (console scripts name their interpreter by absolute path), so it is built in its own directory,
# plone-venv-<key>.build-<pid>, and published by renaming a symlink onto plone-venv-<key>: an
# interrupted build is never published, and a missing or broken venv is built again.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
constraints="$here/constraints.txt"
python="${MUTU_PYTHON:-python3}"
plone_version="6.2.2"
cache="${MUTU_CACHE:-$HOME/.cache/mutu}"

interpreter="$("$python" -c 'import sys, platform; print(sys.version, platform.machine())')"
key="$( { cat "$constraints" "$here/setup-venv.sh"; echo "$interpreter"; } |
  sha256sum | cut -c1-16)"
venv="$cache/plone-venv-$key"

usable() {
  [ -f "$venv/.mutu-complete" ] && [ -x "$venv/bin/zconsole" ] &&
    "$venv/bin/python" -c 'import pytest, Zope2, plone.distribution, collective.solr, ZEO' >/dev/null 2>&1
}

if usable; then
  echo "$venv"
  exit 0
fi

mkdir -p "$cache"
# One build at a time; whoever waited finds the venv the other one built.
exec 9>"$cache/plone-venv.lock"
flock 9
if usable; then
  echo "$venv"
  exit 0
fi

# Builds interrupted earlier (none can be running: we hold the lock).
for stale in "$venv".build-*; do
  if [ -d "$stale" ] && [ "$(readlink "$venv" 2>/dev/null)" != "$(basename "$stale")" ]; then
    rm -rf "$stale"
  fi
done

build="$venv.build-$$"
rm -rf "$build"
trap 'rm -rf "$build"' EXIT
started=$(date +%s)
echo "==> building the Plone $plone_version test venv in $build (about a minute)" >&2
"$python" -m venv "$build" >&2
"$build/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
  -c "$constraints" "Plone==$plone_version" pytest collective.solr six ZEO >&2
"$build/bin/python" -c 'import pytest, Zope2, plone.distribution, collective.solr, ZEO' >&2
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
echo "==> venv ready in $(($(date +%s) - started)) s ($(du -sh "$build" | cut -f1))" >&2
echo "$venv"
