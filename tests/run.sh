#!/usr/bin/env bash
# The whole test suite: unit tests (no cluster), then one fresh local control
# plane for the end-to-end tests, stopped again at the end.
#
#   tests/run.sh PATH/TO/mutu
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mutu="$1"
state="${MUTU_TEST_DIR:-$root/.mutu/test}"
port="${MUTU_TEST_API_PORT:-16443}"
started=$(date +%s)

tests/setup.sh

echo "==> unit tests"
cargo test --locked --workspace --exclude mutu-e2e

echo "==> the site scripts against a real Plone (tests/plone)"
tests/plone/run.sh

echo "==> local control plane for the end-to-end tests ($state)"
"$mutu" dev down --dir "$state" --api-port "$port" >/dev/null 2>&1 || true
operator_pid=""
cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null
  "$mutu" dev down --dir "$state" --api-port "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$mutu" dev up --dir "$state" --api-port "$port" >/dev/null
export KUBECONFIG="$state/kubeconfig"
# kubectl of the cluster's own release (built with it), ahead of any other.
PATH="$(bash tests/cluster/build.sh 2>/dev/null | tail -n 1):$PATH"
export PATH

echo "==> operators (log: $state/logs/operator.log)"
metrics_addr="127.0.0.1:$((port + 10))"
"$mutu" operator run --metrics-addr "$metrics_addr" >"$state/logs/operator.log" 2>&1 &
operator_pid=$!
export MUTU_OPERATOR_METRICS="http://$metrics_addr/metrics" MUTU_BIN="$mutu"
for _ in $(seq 1 50); do
  curl -fs "http://$metrics_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "==> end-to-end tests"
if ! cargo test --locked -p mutu-e2e --test e2e -- --test-threads=4 \
   || ! cargo test --locked -p mutu-e2e --test serial -- --test-threads=1; then
  echo "--- last lines of the operator log ($state/logs/operator.log):"
  tail -n 40 "$state/logs/operator.log"
  exit 1
fi

echo "==> all tests passed in $(( $(date +%s) - started ))s"
