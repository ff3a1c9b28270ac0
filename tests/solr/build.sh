#!/usr/bin/env bash
# Builds the mutu Solr launcher once with Maven (Solr 9.10.1 from Maven Central) and caches it
# outside the work tree, keyed by a hash of everything that goes into it. Prints the directory
# on its last line: mutu-solr-launcher.jar and lib/ (the runtime classpath).
#
#   MUTU_CACHE      cache root (default: ~/.cache/mutu)
#   MUTU_M2_REPO    Maven local repository (default: Maven's own, ~/.m2/repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

cache="${MUTU_CACHE:-$HOME/.cache/mutu}"
key=$( { cat pom.xml build.sh; find src -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done; } \
       | sha256sum | cut -c1-16)
out="$cache/solr/$key"
ready() { [ -f "$out/mutu-solr-launcher.jar" ] && [ -f "$out/lib/solr-core-9.10.1.jar" ]; }
if ready; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache/solr"
exec 9>"$cache/solr/.lock"
flock 9
if ready; then  # built by another run while we waited
  echo "$out"
  exit 0
fi

mvn_args=(-q -B -Dstyle.color=never)
[ -n "${MUTU_M2_REPO:-}" ] && mvn_args+=("-Dmaven.repo.local=$MUTU_M2_REPO")
echo "building the Solr launcher into $out (a cold build downloads about 80 MB from Maven Central)" >&2
start=$(date +%s)
rm -rf "$out.partial"
mkdir -p "$out.partial"
mvn "${mvn_args[@]}" -f "$here/pom.xml" package \
  "-Dmutu.build.dir=$out.partial/build" "-Dmutu.out.dir=$out.partial" >&2
rm -rf "$out.partial/build"
echo "Solr launcher built in $(( $(date +%s) - start ))s" >&2
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out"
