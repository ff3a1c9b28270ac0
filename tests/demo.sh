#!/usr/bin/env bash
# `make demo`: the local control plane with its ACME server and Solr, mutu's
# operators, and the cooperative's 2019 fleet (310 members, 819 sites) from
# `mutu fleet generate --profile imio-2019`; `make demo-down` stops them all.
#
#   tests/demo.sh PATH/TO/mutu [up|down]
#
#   MUTU_DEMO_PROFILE   the fleet profile (default imio-2019)
#   MUTU_DEMO_TIMEOUT   seconds to wait for the whole fleet to be Ready (default 3600)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mutu="$1"
state="$root/.mutu/dev"
pidfile="$state/pids/operator.pid"
metrics_addr="127.0.0.1:9090"
profile="${MUTU_DEMO_PROFILE:-imio-2019}"
timeout="${MUTU_DEMO_TIMEOUT:-3600}"

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

started=$SECONDS
tests/setup.sh
# One Solr collection per site that searches (543 in the 2019 fleet): more
# heap than the tests' Solr needs.
export SOLR_HEAP="${SOLR_HEAP:-3g}"
"$mutu" dev up
# KUBECONFIG, and the loopback address where Pebble validates HTTP-01 challenges.
eval "$("$mutu" dev env)"
export KUBECONFIG MUTU_ACME_SOLVER_ADDR
# Only the local ACME server is contacted.
export MUTU_ACME_SERVER_ALLOW="https://127.0.0.1:"
PATH="$(bash tests/cluster/build.sh 2>/dev/null | tail -n 1):$PATH"

stop_operator
mkdir -p "$state/pids" "$state/logs"
# The 2019 fleet runs on the physical servers; every hostname gets its
# certificate from the local ACME server.
nohup "$mutu" operator run --metrics-addr "$metrics_addr" \
  --default-pool physical --default-issuer dev-acme \
  >"$state/logs/operator.log" 2>&1 &
echo $! >"$pidfile"
echo "operators started (log: $state/logs/operator.log, metrics: http://$metrics_addr/metrics)"

# The fleet, as ordinary YAML: the same file can go to a GitOps repository.
fleet="$state/fleet-$profile.yaml"
"$mutu" fleet generate --profile "$profile" --out "$fleet"
# Split by kind: the catalog and the members first, their sites once the
# members' namespaces exist.
parts="$state/fleet-parts"
rm -rf "$parts" && mkdir -p "$parts"
python3 - "$fleet" "$parts" <<'PY'
import sys
fleet, parts = sys.argv[1], sys.argv[2]
docs = {}
for doc in open(fleet).read().split("\n---\n"):
    kind = next((l.split(":", 1)[1].strip() for l in doc.splitlines() if l.startswith("kind:")), None)
    if kind:
        docs.setdefault(kind, []).append(doc.strip("-\n"))
for kind, items in docs.items():
    with open(f"{parts}/{kind}.yaml", "w") as f:
        f.write("".join(f"---\n{d}\n" for d in items))
PY
sites_total=$(grep -c '^kind: PloneSite' "$fleet")
tenants_total=$(grep -c '^kind: MemberTenant' "$fleet")

kubectl apply --server-side --field-manager=mutu-demo -f "$parts/Product.yaml" -f "$parts/BackupPolicy.yaml" >/dev/null
kubectl apply --server-side --field-manager=mutu-demo -f "$parts/MemberTenant.yaml" >/dev/null
echo "waiting for the $tenants_total members' namespaces ..."
kubectl wait --for=condition=Ready membertenants -l "hosting.imio.be/profile=$profile" --timeout=600s >/dev/null
kubectl apply --server-side --field-manager=mutu-demo -f "$parts/PloneSite.yaml" >/dev/null
echo "applied $sites_total sites; the operators bring them up"

# How many objects of a kind have condition Ready=True.
ready() {
  kubectl get "$1" -A --no-headers -o 'custom-columns=R:.status.conditions[?(@.type=="Ready")].status' 2>/dev/null |
    grep -c '^True' || true
}
count() {
  kubectl get "$1" -A --no-headers 2>/dev/null | wc -l
}
applied=$SECONDS
while :; do
  sites=$(ready plonesites)
  certs=$(ready certificates)
  certs_total=$(count certificates)
  indexes=$(ready solrindexes)
  indexes_total=$(count solrindexes)
  printf '%5ds  sites Ready %d/%d   certificates issued %d/%d   Solr indexes created %d/%d\n' \
    $((SECONDS - started)) "$sites" "$sites_total" "$certs" "$certs_total" "$indexes" "$indexes_total"
  if [ "$sites" -ge "$sites_total" ] && [ "$certs" -ge "$certs_total" ] && [ "$indexes" -ge "$indexes_total" ]; then
    break
  fi
  if [ $((SECONDS - applied)) -gt "$timeout" ]; then
    echo "the fleet is not Ready after ${timeout}s; what is missing:" >&2
    "$mutu" fleet status >&2 || true
    exit 1
  fi
  sleep 15
done
echo
echo "the fleet is Ready: $sites_total sites of $tenants_total members, $certs_total certificates and $indexes_total Solr indexes in $((SECONDS - started)) s"
echo
"$mutu" fleet status
echo
echo "The control plane and the operators keep running. Look around with:"
echo "  export KUBECONFIG=$state/kubeconfig"
echo "  kubectl get products"
echo "  kubectl get membertenants"
echo "  kubectl get plonesites -A"
echo "  kubectl get certificates,solrindexes -A"
echo "  $mutu fleet status"
echo "The fleet's YAML is $fleet."
echo "Stop everything with: make demo-down"
