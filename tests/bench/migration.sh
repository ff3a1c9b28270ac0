#!/usr/bin/env bash
# The migration benchmark on real nodes: a control plane of its own with the two real nodes
# (`mutu dev up --nodes real`), the operator, then N ZEO sites with content moved from
# frontend-1 to physical-1 by one MigrationPlan at maxInFlight M
# (tests/e2e/tests/real_nodes/bench.rs). Prints the sites per hour and the time each site showed
# the maintenance page; removes the control plane afterwards.
#
#   tests/bench/migration.sh [SITES [MAX_IN_FLIGHT]]      # default 6 sites, maxInFlight 3
#
# Not part of `make test`. Uses the real nodes' fixed names and ports: not while `make test` or
# `make demo --nodes real` runs on this machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export MUTU_BENCH_SITES="${1:-6}" MUTU_BENCH_MAX_IN_FLIGHT="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MUTU_CACHE:-$HOME/.cache/mutu}/target}"
cargo build --locked -q -p mutu-cli
mutu="$CARGO_TARGET_DIR/debug/mutu"
state="$root/.mutu/bench-migration"
port=16443
metrics_addr="127.0.0.1:$((port + 10))"
tests/setup.sh >/dev/null
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  "$mutu" dev down --dir "$state" --api-port "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$mutu" dev down --dir "$state" --api-port "$port" >/dev/null 2>&1 || true
echo "==> real nodes ($state)" >&2
"$mutu" dev up --dir "$state" --api-port "$port" --nodes real >"$state.up.log" 2>&1 \
  || { tail -n 40 "$state.up.log"; exit 1; }
eval "$("$mutu" dev env --dir "$state" --api-port "$port")"
export KUBECONFIG MUTU_ACME_SOLVER_ADDR MUTU_INGRESS_HTTP MUTU_INGRESS_HTTPS MUTU_SOLR_URL \
  MUTU_INGRESS_NAMESPACE MUTU_INGRESS_CLASS MUTU_ACME_PROPAGATION_DELAY MUTU_BACKUP_STORAGE_CLASS \
  MUTU_BACKUP_VOLUME_IMAGE
export MUTU_DEV_DIR="$state" MUTU_ACME_SERVER_ALLOW="https://127.0.0.1:"
"$mutu" operator run --metrics-addr "$metrics_addr" --default-issuer dev-ca \
  >"$state/logs/operator.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do
  curl -fs "http://$metrics_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "==> $MUTU_BENCH_SITES sites, maxInFlight $MUTU_BENCH_MAX_IN_FLIGHT (operator log: $state/logs/operator.log)" >&2
cargo test --locked -q -p mutu-e2e --test real_nodes -- --ignored --nocapture --exact bench::bench_migration \
  | grep -E "^migration bench:|^test result|panicked|Error"
