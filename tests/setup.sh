#!/usr/bin/env bash
# Installs what the tests and the demo need that is not on a fresh machine.
# Idempotent and quiet when everything is there. kubectl is not needed: the
# control plane's build brings a kubectl of its own release.
set -euo pipefail
missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
# The portal's browser tests: a headless Chromium and its WebDriver server.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# The ACME fault test's injector in front of Pebble (tests/e2e/tests/acme_faults.rs): nginx,
# run by the test itself on a loopback port (Debian puts it in /usr/sbin).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# Real nodes (`mutu dev up --nodes real`): network namespaces and forwarders,
# the firewall tools of kube-proxy and kube-router, the CNI plugins, runc's
# seccomp library, and umoci and debootstrap to make images without a registry.
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v socat >/dev/null || missing+=(socat)
command -v iptables >/dev/null || missing+=(iptables)
command -v ipset >/dev/null || missing+=(ipset)
command -v conntrack >/dev/null || missing+=(conntrack)
command -v umoci >/dev/null || missing+=(umoci)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
[ -f /usr/include/seccomp.h ] || missing+=(libseccomp-dev)
dpkg-query -W busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >&2
  # Debian starts a freshly installed nginx on port 80 of every address: the tests run their
  # own on loopback, so that one goes.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    { command -v service >/dev/null && service nginx stop; } >/dev/null 2>&1 || true
    /usr/sbin/nginx -s stop >/dev/null 2>&1 || true
  fi
fi
# cargo's incremental caches grow with every build of every checkout and are
# only an accelerator: past 15 GB they go, and the next build recreates them.
incremental="${CARGO_TARGET_DIR:-${MUTU_CACHE:-$HOME/.cache/mutu}/target}/debug/incremental"
if [ -d "$incremental" ] && [ "$(du -s --block-size=1G "$incremental" | cut -f1)" -gt 15 ]; then
  echo "removing cargo's incremental cache ($incremental, over 15 GB)" >&2
  rm -rf "$incremental"
fi
# axe-core, the accessibility rules the portal's browser tests run in every page they visit:
# from npm, pinned, installed once into ${MUTU_CACHE:-~/.cache/mutu}/axe-core-<version> (built
# beside it and renamed into place, so an interrupted install is never used). tests/run.sh
# exports the path of its axe.min.js as MUTU_AXE_JS.
axe_version=4.14.1
axe_dir="${MUTU_CACHE:-$HOME/.cache/mutu}/axe-core-$axe_version"
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >&2; }
  mkdir -p "$(dirname "$axe_dir")"
  # One install at a time; whoever waited finds the one the other made.
  exec 9>"$axe_dir.lock"
  flock 9
  if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
    rm -rf "$axe_dir".build-*
    build="$axe_dir.build-$$"
    echo "installing axe-core $axe_version from npm into $axe_dir" >&2
    npm install --prefix "$build" --no-save --no-audit --no-fund --ignore-scripts \
      --loglevel=error "axe-core@$axe_version" >&2
    [ -f "$build/node_modules/axe-core/axe.min.js" ] || { echo "npm installed no axe.min.js" >&2; exit 1; }
    rm -rf "$axe_dir"
    mv "$build" "$axe_dir"
  fi
  exec 9>&-
fi
