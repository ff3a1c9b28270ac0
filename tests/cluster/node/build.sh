#!/usr/bin/env bash
# Builds the pieces of the real nodes once and caches them outside the work
# tree, keyed by a hash of everything that goes into them; prints the directory
# that holds them on its last line:
#   mutu-node                 kubelet and kube-proxy (the control plane's release)
#   containerd, containerd-shim-runc-v2, ctr, runc   the container runtime
#   coredns, kube-router, traefik                    cluster DNS, NetworkPolicy
#                                                    enforcement, ingress controller
#   local-path-provisioner    local volumes, each on the node that mounts it
#   images/*.tar              OCI archives of pause, CoreDNS, Traefik, the
#                             provisioner and its helper (Debian's static
#                             busybox), made here from those binaries (nothing
#                             is pulled)
#
#   MUTU_CACHE   cache root (default: ~/.cache/mutu)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
source ../versions.env
source ./versions.env

for tool in umoci gcc; do
  command -v "$tool" >/dev/null || { echo "$tool is required (tests/setup.sh installs it)" >&2; exit 1; }
done
dpkg-query -W busybox-static >/dev/null 2>&1 \
  || { echo "Debian's busybox-static is required (tests/setup.sh installs it)" >&2; exit 1; }
[ -f /usr/include/seccomp.h ] || { echo "libseccomp-dev is required to build runc (tests/setup.sh installs it)" >&2; exit 1; }

cache="${MUTU_CACHE:-$HOME/.cache/mutu}"
key=$( { cat go.mod go.sum main.go versions.env ../versions.env build.sh mkimage.sh \
           traefik/go.mod traefik/go.sum traefik/tools.go; go version; } | sha256sum | cut -c1-16)
out="$cache/node/$key"
if [ -x "$out/mutu-node" ] && [ -f "$out/images/traefik.tar" ] && [ -f "$out/images/busybox.ref" ]; then
  echo "$out"
  exit 0
fi

rm -rf "$out.partial"
mkdir -p "$out.partial/images"
echo "building the real nodes' pieces into ${out} (a cold build takes 10-20 minutes on 2 cores)" >&2
timed() {
  local what="$1"; shift
  local start; start=$(date +%s)
  "$@" >&2
  echo "$what built in $(( $(date +%s) - start ))s" >&2
}

minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION}"
  ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
  ldflags+=" -X ${pkg}.gitTreeState=clean"
  ldflags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done
timed "kubelet and kube-proxy (mutu-node)" \
  go build -trimpath -ldflags "$ldflags" -o "$out.partial/mutu-node" .

gobin() { GOBIN="$out.partial" CGO_ENABLED="${CGO:-0}" go install -trimpath -ldflags "-s -w" "$@"; }
timed "containerd ${CONTAINERD_VERSION}" gobin -tags "no_btrfs no_devmapper no_zfs" \
  "github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
  "github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}"
CGO=1 timed "runc ${RUNC_VERSION}" gobin -tags seccomp "github.com/opencontainers/runc@${RUNC_VERSION}"
timed "CoreDNS ${COREDNS_VERSION}" gobin "github.com/coredns/coredns@${COREDNS_VERSION}"
timed "kube-router ${KUBE_ROUTER_VERSION}" gobin \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@${KUBE_ROUTER_VERSION}"
timed "local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}" gobin \
  "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}"
# Traefik's module has replace directives, so it is built from a module of
# ours that requires it (traefik/go.mod repeats them).
(cd traefik && timed "Traefik ${TRAEFIK_VERSION}" env CGO_ENABLED=0 \
  go build -trimpath -ldflags "-s -w" -o "$out.partial/traefik" github.com/traefik/traefik/v3/cmd/traefik)

# The pod sandbox: Kubernetes' own pause.c, from the release's module source.
k8s_dir=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -Os -Wall -static -DVERSION="v${PAUSE_VERSION}" -o "$work/pause" "$k8s_dir/build/pause/linux/pause.c"
./mkimage.sh "$out.partial/images/pause.tar" "mutu.local/pause:${PAUSE_VERSION}" '["/pause"]' "$work/pause:/pause"
./mkimage.sh "$out.partial/images/coredns.tar" "mutu.local/coredns:${COREDNS_VERSION#v}" '["/coredns"]' \
  "$out.partial/coredns:/coredns"
./mkimage.sh "$out.partial/images/local-path-provisioner.tar" \
  "mutu.local/local-path-provisioner:${LOCAL_PATH_PROVISIONER_VERSION#v}" '["/local-path-provisioner"]' \
  "$out.partial/local-path-provisioner:/local-path-provisioner"
# The provisioner's helper pods run sh, mkdir and rm: busybox answers to each name.
busybox_version=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null | sed 's/^[0-9]*://; s/[^A-Za-z0-9_.-]/-/g')
./mkimage.sh "$out.partial/images/busybox.tar" "mutu.local/busybox:${busybox_version:-static}" '["/bin/sh"]' \
  /bin/busybox:/bin/busybox /bin/busybox:/bin/sh /bin/busybox:/bin/mkdir /bin/busybox:/bin/rm
echo "mutu.local/busybox:${busybox_version:-static}" > "$out.partial/images/busybox.ref"
./mkimage.sh "$out.partial/images/traefik.tar" "mutu.local/traefik:${TRAEFIK_VERSION#v}" '["/traefik"]' \
  "$out.partial/traefik:/traefik"

chmod -R u+w "$out.partial"
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out"
