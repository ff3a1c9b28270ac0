#!/usr/bin/env bash
# `make demo`: the local control plane with the example resources applied.
#
#   tests/demo.sh PATH/TO/mutu
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mutu="$1"

tests/setup.sh
"$mutu" dev up
export KUBECONFIG="$root/.mutu/dev/kubeconfig"
PATH="$(bash tests/cluster/build.sh 2>/dev/null | tail -n 1):$PATH"

# The examples name tenant namespaces; create them until the tenant operator does.
grep -h '^ *namespace:' examples/*.yaml | awk '{print $2}' | sort -u | while read -r ns; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
done
kubectl apply --server-side --field-manager=mutu-demo -f examples/
echo
kubectl get nodes -L hosting.imio.be/pool
echo
kubectl get membertenants,products
echo
kubectl get plonesites,certificates -A
echo
echo "The local control plane keeps running. Look around with:"
echo "  export KUBECONFIG=$root/.mutu/dev/kubeconfig"
echo "  kubectl get plonesites -A"
echo "  kubectl explain plonesites.spec"
echo "Stop it with: make demo-down"
