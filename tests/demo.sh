#!/usr/bin/env bash
# `make demo`: the local control plane, mutu's operators, and the example
# fleet; `make demo-down` stops them all.
#
#   tests/demo.sh PATH/TO/mutu [up|down]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mutu="$1"
state="$root/.mutu/dev"
pidfile="$state/pids/operator.pid"
metrics_addr="127.0.0.1:9090"

stop_operator() {
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

if [ "${2:-up}" = down ]; then
  stop_operator
  "$mutu" dev down
  exit 0
fi

tests/setup.sh
"$mutu" dev up
# KUBECONFIG, and the loopback address where Pebble validates HTTP-01 challenges.
eval "$("$mutu" dev env)"
export KUBECONFIG MUTU_ACME_SOLVER_ADDR
# Only the local ACME server is contacted; the examples' Let's Encrypt issuers
# say so in their status.
export MUTU_ACME_SERVER_ALLOW="https://127.0.0.1:"
PATH="$(bash tests/cluster/build.sh 2>/dev/null | tail -n 1):$PATH"

stop_operator
mkdir -p "$state/pids" "$state/logs"
nohup "$mutu" operator run --metrics-addr "$metrics_addr" --default-issuer dev-acme >"$state/logs/operator.log" 2>&1 &
echo $! >"$pidfile"
echo "operators started (log: $state/logs/operator.log, metrics: http://$metrics_addr/metrics)"

kubectl apply --server-side --field-manager=mutu-demo -f examples/catalog.yaml -f examples/tenants.yaml >/dev/null
echo "waiting for the members' namespaces ..."
kubectl wait --for=condition=Ready membertenants --all --timeout=120s >/dev/null
# Namespaces the examples use that are not members' (e.g. solr): created here.
grep -h '^ *namespace:' examples/*.yaml | awk '{print $2}' | grep -v '^tenant-' | sort -u | while read -r ns; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
done
kubectl apply --server-side --field-manager=mutu-demo -f examples/ >/dev/null
echo
kubectl get nodes -L hosting.imio.be/pool
echo
kubectl get products
echo
kubectl get membertenants
echo
kubectl get plonesites,certificates -A
echo
echo "The control plane and the operators keep running. Look around with:"
echo "  export KUBECONFIG=$state/kubeconfig"
echo "  kubectl get membertenants"
echo "  kubectl get plonesites -A"
echo "  kubectl explain plonesites.spec"
echo "Stop everything with: make demo-down"
