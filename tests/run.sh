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

# Every fault scenario that passes is recorded here (mutu_e2e::fault_scenario_passed), then
# counted at the end: fewer than this many is a failure (a scenario that stopped running
# would go unnoticed otherwise).
fault_scenarios_at_least=30
export MUTU_FAULT_LOG="$root/.mutu/test-faults.log"
mkdir -p "$root/.mutu"
: >"$MUTU_FAULT_LOG"

echo "==> unit tests"
cargo test --locked --workspace --exclude mutu-e2e

# The scripts' tests need no cluster: they run beside the end-to-end tests that
# mostly wait (the migration, the chart, HA), and their output follows them.
scripts() {
  echo "==> the site scripts against a real Plone (tests/plone)"
  tests/plone/run.sh
  echo "==> the RelStorage backup script against a real PostgreSQL (tests/postgres)"
  tests/postgres/run.sh
  echo "==> the generic products' volume backup script with busybox (tests/volume)"
  tests/volume/run.sh
  echo "==> the Argo CD health check of mutu's kinds, in real Lua (tests/gitops)"
  tests/gitops/run.sh
}
scripts_log="$root/.mutu/test-scripts.log"
scripts_pid=""
# Waits for the scripts' tests, if they started, shows what they printed, and fails if they did.
scripts_done() {
  [ -n "$scripts_pid" ] || return 0
  local rc=0
  wait "$scripts_pid" || rc=$?
  scripts_pid=""
  cat "$scripts_log"
  if [ "$rc" -ne 0 ]; then
    echo "--- the scripts' tests failed (log: $scripts_log)"
  fi
  return "$rc"
}

echo "==> local control plane for the end-to-end tests ($state)"
"$mutu" dev down --dir "$state" --api-port "$port" >/dev/null 2>&1 || true
pid_file="$state-operator.pid"
cleanup() {
  # The serial tests may have replaced the operator: stop whichever runs now.
  if [ -f "$pid_file" ]; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$pid_file"
  "$mutu" dev down --dir "$state" --api-port "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$mutu" dev up --dir "$state" --api-port "$port" >/dev/null
# KUBECONFIG, and the loopback address where Pebble validates HTTP-01 challenges.
eval "$("$mutu" dev env --dir "$state" --api-port "$port")"
export KUBECONFIG MUTU_ACME_SOLVER_ADDR
# Where this control plane lives, for the tests that stop and restart a part of it.
export MUTU_DEV_DIR="$state" MUTU_DEV_API_PORT="$port"
# Helm and promtool, for the chart's tests, and Toxiproxy, for the slow API
# server's (built once and cached).
MUTU_HELM="$(bash tests/cluster/tool.sh helm | tail -n 1)"
MUTU_PROMTOOL="$(bash tests/cluster/tool.sh promtool | tail -n 1)"
MUTU_TOXIPROXY="$(bash tests/cluster/tool.sh toxiproxy | tail -n 1)"
export MUTU_HELM MUTU_PROMTOOL MUTU_TOXIPROXY
export MUTU_AXE_JS="${MUTU_CACHE:-$HOME/.cache/mutu}/axe-core-$(sed -n 's/^axe_version=//p' tests/setup.sh)/node_modules/axe-core/axe.min.js"
# kubectl of the cluster's own release (built with it), ahead of any other.
PATH="$(bash tests/cluster/build.sh 2>/dev/null | tail -n 1):$PATH"
export PATH

echo "==> operators (log: $state/logs/operator.log)"
metrics_addr="127.0.0.1:$((port + 10))"
# Sites get their certificates from the internal CA unless they name an issuer.
# Only the local ACME server is ever contacted (the examples name Let's
# Encrypt), also by the operators that tests start themselves.
export MUTU_ACME_SERVER_ALLOW="https://127.0.0.1:"
operator_args="operator run --metrics-addr $metrics_addr --default-issuer dev-ca"
# On simulated nodes, the data a restore set aside goes after 20 s instead of a week, so
# that the tests see the Job that deletes it.
kwok_args="$operator_args --restore-keep-before 20s"
# shellcheck disable=SC2086
"$mutu" $kwok_args >"$state/logs/operator.log" 2>&1 &
echo $! >"$pid_file"
# A test may kill it and start another: no job-control notice about it.
disown
export MUTU_OPERATOR_METRICS="http://$metrics_addr/metrics" MUTU_BIN="$mutu"
export MUTU_OPERATOR_ARGS="$kwok_args" MUTU_OPERATOR_PID_FILE="$pid_file"
export MUTU_OPERATOR_LOG="$state/logs/operator.log"
for _ in $(seq 1 50); do
  curl -fs "http://$metrics_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "==> end-to-end tests"
e2e_failed() {
  echo "--- last lines of the operator log ($state/logs/operator.log):"
  tail -n 40 "$state/logs/operator.log"
  scripts_done || true
  exit 1
}
cargo test --locked -p mutu-e2e --test e2e -- --test-threads=4 || e2e_failed
cargo test --locked -p mutu-e2e --test hostile || e2e_failed
cargo test --locked -p mutu-e2e --test serial -- --test-threads=1 || e2e_failed
echo "==> the scripts' tests start beside the next ones (log: $scripts_log)"
scripts >"$scripts_log" 2>&1 &
scripts_pid=$!
cargo test --locked -p mutu-e2e --test migration -- --test-threads=1 || e2e_failed
cargo test --locked -p mutu-e2e --test chart -- --test-threads=1 || e2e_failed
cargo test --locked -p mutu-e2e --test ha -- --test-threads=1 || e2e_failed
scripts_done

echo "==> real nodes: the same control plane with real kubelets, containerd, CNI, kube-proxy,"
echo "    CoreDNS, kube-router and Traefik, and the images of examples/dev-catalog.yaml"
# The kwok plane and its operator go first: the two cores are the real nodes' now.
cleanup
real_state="$state-real"
"$mutu" dev down --dir "$real_state" --api-port "$port" >/dev/null 2>&1 || true
cleanup_real() {
  cleanup
  "$mutu" dev down --dir "$real_state" --api-port "$port" >/dev/null 2>&1 || true
}
trap cleanup_real EXIT
real_started=$(date +%s)
if ! "$mutu" dev up --dir "$real_state" --api-port "$port" --nodes real >"$root/.mutu/test-real-up.log" 2>&1; then
  tail -n 60 "$root/.mutu/test-real-up.log"
  exit 1
fi
echo "    real nodes up in $(( $(date +%s) - real_started ))s (log: $root/.mutu/test-real-up.log)"
# KUBECONFIG, where the ingress controller listens, and the operator settings
# that fit real nodes (Solr as pods reach it, the ingress namespace and class,
# the HTTP-01 solver behind the ingress controller).
eval "$("$mutu" dev env --dir "$real_state" --api-port "$port")"
export KUBECONFIG MUTU_ACME_SOLVER_ADDR MUTU_INGRESS_HTTP MUTU_INGRESS_HTTPS MUTU_SOLR_URL \
  MUTU_INGRESS_NAMESPACE MUTU_INGRESS_CLASS MUTU_ACME_PROPAGATION_DELAY MUTU_BACKUP_STORAGE_CLASS \
  MUTU_BACKUP_VOLUME_IMAGE
export MUTU_DEV_DIR="$real_state"
# shellcheck disable=SC2086
"$mutu" $operator_args >"$real_state/logs/operator.log" 2>&1 &
echo $! >"$pid_file"
disown
export MUTU_OPERATOR_ARGS="$operator_args"
export MUTU_OPERATOR_LOG="$real_state/logs/operator.log"
for _ in $(seq 1 50); do
  curl -fs "http://$metrics_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
if ! cargo test --locked -p mutu-e2e --test real_nodes -- --test-threads=2 \
   || ! cargo test --locked -p mutu-e2e --test real_nodes_serial -- --test-threads=1 \
   || ! cargo test --locked -p mutu-e2e --test real_nodes_chart -- --test-threads=1; then
  echo "--- last lines of the operator log ($real_state/logs/operator.log):"
  tail -n 40 "$real_state/logs/operator.log"
  exit 1
fi

echo "==> fault scenarios that passed (log: $MUTU_FAULT_LOG):"
sort -u "$MUTU_FAULT_LOG" | awk '{ printf "  %2d  %s\n", NR, $0 }'
fault_scenarios=$(sort -u "$MUTU_FAULT_LOG" | wc -l)
echo "    $fault_scenarios fault scenarios passed"
if [ "$fault_scenarios" -lt "$fault_scenarios_at_least" ]; then
  echo "--- fewer than $fault_scenarios_at_least fault scenarios passed: one stopped running"
  exit 1
fi

echo "==> screenshots of the portal's pages: ${MUTU_TEST_ARTIFACTS:-$root/.mutu/test-artifacts}/portal"
echo "==> all tests passed in $(( $(date +%s) - started ))s"
