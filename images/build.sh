#!/usr/bin/env bash
# Builds mutu's OCI images from the package registries, without a registry or a container engine.
#
#   images/build.sh [NAME...]     # every image when no NAME; progress on stderr
#
# For each image it prints one line `REF<TAB>PATH`: PATH is an OCI-layout tar archive whose
# index.json names the image REF (annotations io.containerd.image.name and
# org.opencontainers.image.ref.name), ready for `ctr -n k8s.io images import --all-platforms PATH`.
#
# An image is a directory images/NAME holding a file `image` (shell variables: REF, the
# entrypoint, environment, user, ports, volumes, the extra input files) and a `build` script that
# installs the image's content into a root filesystem. Every image starts from one base root
# filesystem made by debootstrap from images/base (cached by the hash of that directory) and gets
# one layer of its own on top of it.
#
# Archives are cached under ${MUTU_CACHE:-$HOME/.cache/mutu}/images/NAME-KEY.tar, KEY the first 16
# hex digits of the sha256 of every input (this script, the image's directory, its extra inputs,
# the base's key): change an input and the image is built again; delete an archive and it is
# built again. A build works in NAME-KEY.partial.* and renames the archive into place at the very
# end, so an interrupted build never leaves a cached archive behind. Needs root (debootstrap and
# chroot), debootstrap, umoci, unshare and network access to the Debian mirror and PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cache="${MUTU_CACHE:-$HOME/.cache/mutu}"
out="$cache/images"

say() { echo "==> $*" >&2; }
die() { echo "images/build.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and file ownership in the images)"
for tool in debootstrap umoci unshare chroot sha256sum tar python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap umoci)"
done
mkdir -p "$out"

# The Debian mirror: MUTU_DEBIAN_MIRROR, else the first apt source serving the base's suite.
debian_mirror() {
  local suite="$1"
  if [ -n "${MUTU_DEBIAN_MIRROR:-}" ]; then
    echo "$MUTU_DEBIAN_MIRROR"
    return
  fi
  python3 - "$suite" <<'PY'
import glob, sys
suite = sys.argv[1]
found = []
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = line.split("#")[0].split()
        if words[:1] != ["deb"]:
            continue
        words = [w for w in words[1:] if not w.startswith("[")]
        if len(words) >= 2 and words[1] == suite:
            found.append(words[0])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(path).read().split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []):
            found.extend(fields.get("uris", []))
if not found:
    sys.exit(f"no apt source serves {suite}: set MUTU_DEBIAN_MIRROR")
print(found[0])
PY
}

# The sha256 of files and directories (relative names and contents), in a stable order.
hash_inputs() {
  local p
  for p in "$@"; do
    if [ -d "$p" ]; then
      (cd "$p" && find . -type f -not -name '*.pyc' -print0 | LC_ALL=C sort -z |
        xargs -0 -r sha256sum)
    else
      sha256sum "$p" | sed "s|  .*|  $(basename "$p")|"
    fi
  done | sha256sum | cut -c1-16
}

# Runs a command in a root filesystem: its own mount namespace (nothing stays mounted after),
# /proc, /dev, the host's DNS resolver, pip's download cache shared between builds (at
# /.pip-cache), and the host's TLS roots for pip (at /.host-ca.crt: PyPI may be reached through a
# TLS-inspecting proxy; the image keeps its own Debian roots). The proxy settings of the
# environment are passed on. Returns the command's exit status.
in_root() {
  local root="$1" status=0 ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
  shift
  local pass=() v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL \
    PIP_DEFAULT_TIMEOUT; do
    [ -n "${!v:-}" ] && pass+=("$v=${!v}")
  done
  mkdir -p "$out/pip-cache" "$root/.pip-cache"
  touch "$root/.host-ca.crt"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  unshare -m --propagation private -- sh -c '
    root="$1"; cache="$2"; ca="$3"; shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind "$cache" "$root/.pip-cache"
    mount --bind -o ro "$ca" "$root/.host-ca.crt"
    exec chroot "$root" /usr/bin/env -i "$@"
  ' in_root "$root" "$out/pip-cache" "$ca" HOME=/root LANG=C.UTF-8 PIP_CACHE_DIR=/.pip-cache \
    PIP_CERT=/.host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${pass[@]+"${pass[@]}"} "$@" || status=$?
  : > "$root/etc/resolv.conf"
  rmdir "$root/.pip-cache"
  rm -f "$root/.host-ca.crt"
  return $status
}

# The base: an OCI layout with one layer, the debootstrap root filesystem, tagged `base`.
base_layout() {
  local key dir work
  key="$(hash_inputs "$here/base")"
  dir="$out/base-$key"
  if [ -f "$dir/.complete" ]; then
    echo "$dir"
    return
  fi
  # shellcheck disable=SC1091
  (
    set -a
    . "$here/base/debootstrap.conf"
    set +a
    mirror="$(debian_mirror "$SUITE")"
    work="$(mktemp -d "$dir.partial.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    started=$SECONDS
    say "base $key: debootstrap $VARIANT $SUITE from $mirror (a few minutes)"
    mkdir "$work/rootfs"
    mkdir -p "$out/debootstrap-cache"
    debootstrap --variant="$VARIANT" --include="$INCLUDE" --cache-dir="$out/debootstrap-cache" \
      "$SUITE" "$work/rootfs" "$mirror" \
      >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    cp "$here/base/setup" "$work/rootfs/tmp/setup"
    in_root "$work/rootfs" /bin/sh /tmp/setup >&2
    rm -f "$work/rootfs/tmp/setup"
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:base"
    umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
    rmdir "$work/bundle/rootfs"
    mv "$work/rootfs" "$work/bundle/rootfs"
    umoci repack --image "$work/oci:base" "$work/bundle"
    rm -rf "$work/bundle"
    touch "$work/oci/.complete"
    rm -rf "$dir"
    mv "$work/oci" "$dir"
    say "base $key: built in $((SECONDS - started)) s"
  ) >&2
  [ -f "$dir/.complete" ] || die "the base was not built"
  echo "$dir"
}

build_image() {
  local name="$1" dir="$here/$1"
  [ -f "$dir/image" ] && [ -x "$dir/build" ] ||
    die "no image $name: images/$name needs a file 'image' and an executable 'build'"
  local REF="" INPUTS="" ENTRYPOINT="" CMD="" USER_ID="" WORKDIR="/" ENV="" PORTS="" VOLUMES=""
  local KEY_EXTRA=""
  # shellcheck disable=SC1090
  . "$dir/image"
  [ -n "$REF" ] || die "images/$name/image sets no REF"
  local base inputs=() p key archive
  base="$(base_layout)"
  for p in $INPUTS; do
    [ -e "$dir/$p" ] || die "images/$name/image: input $p is missing"
    inputs+=("$dir/$p")
  done
  key="$( { hash_inputs "$here/build.sh" "$dir" "${inputs[@]}"; echo "$(basename "$base")";
    echo "$KEY_EXTRA"; } | sha256sum | cut -c1-16)"
  archive="$out/$name-$key.tar"
  if [ -f "$archive" ]; then
    say "$name: cached $archive"
    printf '%s\t%s\n' "$REF" "$archive"
    return
  fi
  local work started=$SECONDS tag="${REF##*:}"
  work="$(mktemp -d "$out/$name-$key.partial.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  say "$name: building $REF"
  # The base's blobs are shared (hard links: umoci never rewrites a blob), its index is copied.
  mkdir "$work/oci"
  cp -al "$base/blobs" "$work/oci/blobs"
  cp "$base/index.json" "$base/oci-layout" "$work/oci/"
  umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
  (
    export ROOTFS="$work/bundle/rootfs" SRC="$dir" REPO="$repo" IMAGE_NAME="$name" IMAGE_REF="$REF"
    export -f in_root say
    export out
    cd "$dir"
    ./build
  ) >&2
  rm -rf "$work/bundle/rootfs/root/.cache" "$work/bundle/rootfs/tmp/"* "$work/bundle/rootfs/var/tmp/"*
  : > "$work/bundle/rootfs/etc/resolv.conf"
  say "$name: packing the layer"
  umoci repack --image "$work/oci:$tag" "$work/bundle"
  rm -rf "$work/bundle"
  local cfg=(--image "$work/oci:$tag" --author mutu --config.workingdir "$WORKDIR"
    --config.label "org.opencontainers.image.title=$name"
    --config.label "org.opencontainers.image.version=$tag")
  [ -n "$USER_ID" ] && cfg+=(--config.user "$USER_ID")
  cfg+=(--clear=config.entrypoint --clear=config.cmd)
  for p in $ENTRYPOINT; do cfg+=(--config.entrypoint "$p"); done
  for p in $CMD; do cfg+=(--config.cmd "$p"); done
  for p in $ENV; do cfg+=(--config.env "$p"); done
  for p in $PORTS; do cfg+=(--config.exposedports "$p"); done
  for p in $VOLUMES; do cfg+=(--config.volume "$p"); done
  umoci config "${cfg[@]}"
  umoci rm --image "$work/oci:base"
  umoci gc --layout "$work/oci"
  # containerd names an imported image after io.containerd.image.name; the OCI annotation keeps
  # the tag, as `ctr images export` writes them.
  python3 - "$work/oci/index.json" "$REF" "$tag" <<'PY'
import json, sys
path, ref, tag = sys.argv[1:]
index = json.load(open(path))
assert len(index["manifests"]) == 1, index
index["manifests"][0]["annotations"] = {
    "io.containerd.image.name": ref,
    "org.opencontainers.image.ref.name": tag,
}
json.dump(index, open(path, "w"))
PY
  tar -C "$work/oci" --sort=name --owner=0 --group=0 --numeric-owner \
    -cf "$work/archive.tar" oci-layout index.json blobs
  mv "$work/archive.tar" "$archive"
  rm -rf "$work"
  trap - EXIT
  say "$name: built $archive in $((SECONDS - started)) s ($(du -h "$archive" | cut -f1))"
  printf '%s\t%s\n' "$REF" "$archive"
}

names=("$@")
if [ ${#names[@]} = 0 ]; then
  for d in "$here"/*/; do
    [ -f "$d/image" ] && names+=("$(basename "$d")")
  done
fi
# One build at a time per cache: whoever waited finds what the other one built.
exec 9>"$out/.lock"
flock 9
for name in "${names[@]}"; do
  build_image "${name%/}"
done
