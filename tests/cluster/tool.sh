#!/usr/bin/env bash
# Builds one Go tool of the test bed with `go install`, once, and caches it
# outside the work tree, keyed by its module, version and the Go toolchain.
# Prints the path of the binary on its last line.
#
#   tests/cluster/tool.sh helm|promtool|toxiproxy
#   MUTU_CACHE   cache root (default: ~/.cache/mutu)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"

# Prometheus's rule checker and unit tester, for the chart's alert rules.
PROMETHEUS_VERSION=v0.316.0
# Shopify's fault-injecting TCP proxy (its server), for the slow API server test.
TOXIPROXY_VERSION=v2.12.0

built=""
case "${1:-}" in
  helm)
    package="helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    ;;
  promtool)
    package="github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_VERSION}"
    ldflags="-s -w"
    ;;
  toxiproxy)
    package="github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION}"
    ldflags="-s -w -X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION}"
    # The package's directory names the binary: `server`, renamed below.
    built=server
    ;;
  *)
    echo "usage: $0 helm|promtool|toxiproxy" >&2
    exit 2
    ;;
esac
name="$1"
built="${built:-$name}"
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
if [ "$built" != "$name" ]; then
  mv "$out.partial/$built" "$out.partial/$name"
fi
echo "$name built in $(( $(date +%s) - start ))s" >&2
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out/$name"
