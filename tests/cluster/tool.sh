#!/usr/bin/env bash
# Builds one Go tool of the test bed with `go install`, once, and caches it
# outside the work tree, keyed by its module, version and the Go toolchain.
# Prints the path of the binary on its last line.
#
#   tests/cluster/tool.sh helm|promtool
#   MUTU_CACHE   cache root (default: ~/.cache/mutu)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"

# Prometheus's rule checker and unit tester, for the chart's alert rules.
PROMETHEUS_VERSION=v0.316.0

case "${1:-}" in
  helm)
    package="helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    ;;
  promtool)
    package="github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_VERSION}"
    ldflags="-s -w"
    ;;
  *)
    echo "usage: $0 helm|promtool" >&2
    exit 2
    ;;
esac
name="$1"
cache="${MUTU_CACHE:-$HOME/.cache/mutu}"
key=$( { echo "$package $ldflags"; go version; } | sha256sum | cut -c1-16)
out="$cache/tools/$name-$key"
if [ -x "$out/$name" ]; then
  echo "$out/$name"
  exit 0
fi
rm -rf "$out.partial"
mkdir -p "$out.partial"
echo "building $package into $out (a few minutes, once)" >&2
start=$(date +%s)
GOBIN="$out.partial" go install -trimpath -ldflags "$ldflags" "$package" >&2
echo "$name built in $(( $(date +%s) - start ))s" >&2
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out/$name"
