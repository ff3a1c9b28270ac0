#!/usr/bin/env bash
# Builds the local control plane's binaries once and caches them outside the
# work tree, keyed by a hash of everything that goes into them. Prints the
# directory that holds them (mutu-cluster, kubectl, kwok, pebble,
# pebble-challtestsrv) on its last line.
#
#   MUTU_CACHE   cache root (default: ~/.cache/mutu)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
source ./versions.env

cache="${MUTU_CACHE:-$HOME/.cache/mutu}"
key=$( { cat go.mod go.sum main.go versions.env build.sh; go version; } | sha256sum | cut -c1-16)
out="$cache/cluster/$key"

# kwok's node and pod life-cycle stages ship in its module source: gather the
# fast node and pod stages and the lease heartbeat into one config file, then
# the test bed's own stages. Cheap, so redone whenever the test stages change
# (they are not part of the binaries' key).
stages() {
  local dir="$1" kwok_dir stage f
  kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  for stage in node/fast node/heartbeat-with-lease pod/fast; do
    for f in "$kwok_dir/kustomize/stage/$stage"/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] && continue
      echo "---"
      cat "$f"
    done
  done > "$dir/kwok-stages.yaml.partial"
  { echo "---"; cat kwok-test-stages.yaml; } >> "$dir/kwok-stages.yaml.partial"
  mv "$dir/kwok-stages.yaml.partial" "$dir/kwok-stages.yaml"
  sha256sum < kwok-test-stages.yaml > "$dir/kwok-test-stages.sha256"
}

if [ -x "$out/mutu-cluster" ] && [ -x "$out/kwok" ] && [ -x "$out/kubectl" ] \
   && [ -x "$out/pebble" ] && [ -x "$out/pebble-challtestsrv" ]; then
  if [ ! -f "$out/kwok-stages.yaml" ] || ! cmp -s <(sha256sum < kwok-test-stages.yaml) "$out/kwok-test-stages.sha256"; then
    stages "$out"
  fi
  echo "$out"
  exit 0
fi

mkdir -p "$out.partial"
minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION}"
  ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean"
  ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

echo "building the control plane (Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}) into ${out}" >&2
echo "a cold build takes 10-25 minutes on 2 cores; later runs reuse it" >&2
start=$(date +%s)
go build -trimpath -ldflags "$ldflags" -o "$out.partial/mutu-cluster" . >&2
echo "mutu-cluster built in $(( $(date +%s) - start ))s" >&2
go build -trimpath -ldflags "$ldflags" -o "$out.partial/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
echo "kubectl built in $(( $(date +%s) - start ))s" >&2

start=$(date +%s)
GOBIN="$out.partial" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" >&2
echo "kwok built in $(( $(date +%s) - start ))s" >&2

# Pebble, Let's Encrypt's ACME test server, and its DNS server.
start=$(date +%s)
for cmd in pebble pebble-challtestsrv; do
  GOBIN="$out.partial" go install -trimpath -ldflags "-s -w" \
    "github.com/letsencrypt/pebble/v2/cmd/${cmd}@${PEBBLE_VERSION}" >&2
done
echo "pebble and pebble-challtestsrv built in $(( $(date +%s) - start ))s" >&2

stages "$out.partial"
chmod -R u+w "$out.partial"

rm -rf "$out"
mv "$out.partial" "$out"
echo "$out"
