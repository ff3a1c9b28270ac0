#!/usr/bin/env bash
# `make demo`: the local control plane with its ACME server and Solr, mutu's
# operators, and the cooperative's 2019 fleet (310 members, 819 sites) from
# `mutu fleet generate --profile imio-2019`; `make demo-down` stops them all.
#
#   tests/demo.sh PATH/TO/mutu [up|down]
#
#   MUTU_DEMO_PROFILE   the fleet profile (default imio-2019; `small` is one member
#                       with one site of each product, up in under two minutes)
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
# One line that redraws itself on a terminal (a line every 30 s otherwise): a
# bar of everything the fleet needs (sites, certificates, indexes) and an
# estimate of the time left from the pace so far.
if [ -t 1 ]; then every=3; else every=30; fi
[ "$sites_total" -le 50 ] && every=2
bar() {
  local done=$1 total=$2 width=30 filled
  filled=$(( total > 0 ? done * width / total : width ))
  printf '[%s%s]' "$(printf '%*s' "$filled" '' | tr ' ' '#')" "$(printf '%*s' $((width - filled)) '' | tr ' ' '.')"
}
while :; do
  sites=$(ready plonesites)
  certs=$(ready certificates.hosting.imio.be)
  certs_total=$(count certificates.hosting.imio.be)
  indexes=$(ready solrindexes)
  indexes_total=$(count solrindexes)
  done_all=$((sites + certs + indexes))
  total_all=$((sites_total + certs_total + indexes_total))
  elapsed=$((SECONDS - applied))
  if [ "$done_all" -gt 0 ] && [ "$done_all" -lt "$total_all" ]; then
    left=$(( elapsed * (total_all - done_all) / done_all ))
    estimate=$(printf 'about %dm%02ds left' $((left / 60)) $((left % 60)))
  else
    estimate="estimating..."
  fi
  line=$(printf '%s %3d%%  sites Ready %d/%d  certificates %d/%d  Solr indexes %d/%d  %4ds  %s' \
    "$(bar "$done_all" "$total_all")" $(( total_all > 0 ? done_all * 100 / total_all : 0 )) \
    "$sites" "$sites_total" "$certs" "$certs_total" "$indexes" "$indexes_total" \
    $((SECONDS - started)) "$estimate")
  if [ -t 1 ]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
  if [ "$sites" -ge "$sites_total" ] && [ "$certs" -ge "$certs_total" ] && [ "$indexes" -ge "$indexes_total" ]; then
    break
  fi
  if [ "$elapsed" -gt "$timeout" ]; then
    echo
    echo "the fleet is not Ready after ${timeout}s; what is missing:" >&2
    "$mutu" fleet status >&2 || true
    exit 1
  fi
  sleep "$every"
done
echo
echo
echo "the fleet is Ready: $sites_total sites of $tenants_total members, $certs_total certificates and $indexes_total Solr indexes in $((SECONDS - started)) s"
echo
"$mutu" fleet status
plugin_dir="$(dirname "$mutu")"
first_site=$(kubectl get plonesites -A --no-headers -o custom-columns=NS:.metadata.namespace,N:.metadata.name 2>/dev/null | head -n 1 | awk '{print $1 "/" $2}')
cat <<EOF

The control plane and the operators keep running. What to try next:

  export KUBECONFIG=$state/kubeconfig PATH=$plugin_dir:\$PATH

  # The fleet at a glance, then one site (conditions, children, events), as on call:
  kubectl mutu status
  kubectl mutu site status $first_site

  # Every site, with why it is not Ready; the members and the catalog; mutu's
  # certificates and search indexes:
  kubectl get plonesites -A
  kubectl get membertenants,products
  kubectl get mcert,solrindexes -A

  # A migration from the physical servers to the virtualised pool, previewed wave by
  # wave without changing anything:
  mutu migrate preview examples/migration.yaml

  # The members' portal, behind the authenticating proxy it expects (here: your own
  # headers, as the proxy would send them):
  mutu portal --listen 127.0.0.1:8080 --trusted-proxy 127.0.0.1 &
  curl -H 'X-Forwarded-User: agent@namur.be' -H 'X-Forwarded-Groups: namur-admins' http://127.0.0.1:8080/

The fleet's YAML is $fleet.
Stop everything with: make demo-down
EOF
