#!/usr/bin/env bash
# Makes an OCI image archive of static binaries, without a registry or a
# container engine (umoci), importable with `ctr images import --base-name`:
#
#   mkimage.sh OUT.tar NAME:TAG '["/entrypoint", "arg"]' FILE:/PATH...
set -euo pipefail
out="$1" ref="$2" entrypoint="$3"
shift 3
tag="${ref##*:}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/layout"
umoci new --image "$work/layout:$tag"
umoci unpack --image "$work/layout:$tag" "$work/bundle" >/dev/null
for pair in "$@"; do
  src="${pair%%:*}" dest="${pair#*:}"
  mkdir -p "$work/bundle/rootfs$(dirname "$dest")"
  cp "$src" "$work/bundle/rootfs$dest"
done
mkdir -p "$work/bundle/rootfs/tmp" "$work/bundle/rootfs/etc"
chmod 1777 "$work/bundle/rootfs/tmp"
echo "nobody:x:65534:65534:nobody:/:/sbin/nologin" > "$work/bundle/rootfs/etc/passwd"
umoci repack --image "$work/layout:$tag" "$work/bundle" >/dev/null
entry_args=()
while IFS= read -r arg; do entry_args+=(--config.entrypoint "$arg"); done \
  < <(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$entrypoint")
umoci config --image "$work/layout:$tag" --os linux --architecture amd64 "${entry_args[@]}"
umoci gc --layout "$work/layout"
tar -C "$work/layout" -cf "$out.partial" .
mv "$out.partial" "$out"
