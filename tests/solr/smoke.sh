#!/usr/bin/env bash
# Smoke test of the local Solr (tests/solr): builds the launcher, starts a one-node SolrCloud on a
# free loopback port with a temporary data directory, then, with curl as the admin: uploads the
# Plone configset, creates a collection and an alias, indexes 2 documents and queries them back
# through the alias, creates a user with the rights the operator gives a site (site-rights.json) and
# checks that it searches and indexes its own collection but gets 403 on its config and schema APIs,
# the Collections and Configsets APIs and another collection; stops Solr with SIGTERM, starts it again on the same data directory (the index and
# the users survive), and stops it again. Prints timings and the JVM's memory.
#
#   SMOKE_PORT=18983   first port tried (Solr on PORT, ZooKeeper on PORT+1000)
#   SMOKE_COLD=1       build into a fresh, temporary MUTU_CACHE (a cold compile; Maven's local
#                      repository stays warm unless MUTU_M2_REPO points at an empty one)
#   SMOKE_RESTART=0    skip the restart on the same data directory
#   SMOKE_NODES=N      start N Solr nodes (default 1)
#   SMOKE_KEEP=1       keep the temporary directory
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mutu-solr-smoke.XXXXXX")"
data="$tmp/data"
log="$tmp/solr.log"
pid=""
ok=0

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
step() { echo "--- $*"; }

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [ "$ok" = 1 ] && [ -z "${SMOKE_KEEP:-}" ]; then
    rm -rf "$tmp"
  else
    echo "kept $tmp (Solr's output: $log, its log: $data/logs/solr.log)" >&2
  fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$log" ]; then
    echo "--- last lines of Solr's output:" >&2
    tail -n 30 "$log" >&2
  fi
  exit 1
}

# json FILTER: reads JSON on stdin, prints the Python expression FILTER of it (d is the document).
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# --- build: first call (cold unless cached), then a second one that must be a cache hit
if [ -n "${SMOKE_COLD:-}" ]; then
  export MUTU_CACHE="$tmp/cache"
fi
step "build"
t0=$(now)
dir="$("$here/build.sh" | tail -n 1)"
t1=$(now)
"$here/build.sh" > /dev/null
t2=$(now)
build_first=$(secs "$t0" "$t1")
build_warm=$(secs "$t1" "$t2")
echo "launcher in $dir (first build.sh ${build_first}s, second ${build_warm}s)"
awk -v w="$build_warm" 'BEGIN { exit !(w < 1.0) }' || fail "the second build.sh took ${build_warm}s: no cache hit"

# --- a free port for Solr (PORT .. PORT+nodes-1) and ZooKeeper (PORT+1000)
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
nodes="${SMOKE_NODES:-1}"
port="${SMOKE_PORT:-18983}"
for _ in $(seq 50); do
  busy=0
  for p in $(seq "$port" $((port + nodes - 1))) $((port + 1000)); do
    if listening "$p"; then busy=1; fi
  done
  [ "$busy" = 0 ] && break
  port=$((port + 10))
done
[ "$busy" = 0 ] || fail "no free port found"
B="http://127.0.0.1:$port/solr"

password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
printf '%s\n' "$password" > "$tmp/admin-password"
chmod 600 "$tmp/admin-password"
admin=(-u "admin:$password")

start_solr() {
  step "start Solr on 127.0.0.1:$port (data $data)"
  : > "$log"
  local t0 t1
  t0=$(now)
  SOLR_ADMIN_PASSWORD= SOLR_ADMIN_PASSWORD_FILE="$tmp/admin-password" SOLR_NODES="$nodes" \
    "$here/run.sh" "$data" "$port" >> "$log" 2>&1 &
  pid=$!
  for _ in $(seq 1200); do
    grep -q '^SOLR READY' "$log" && break
    kill -0 "$pid" 2>/dev/null || fail "Solr exited before it was ready"
    sleep 0.1
  done
  grep -q '^SOLR READY' "$log" || fail "Solr not ready after 120s"
  t1=$(now)
  startup=$(secs "$t0" "$t1")
  grep '^SOLR READY' "$log"
  echo "start-up to ready: ${startup}s"
}

stop_solr() {
  step "stop Solr (SIGTERM to pid $pid)"
  local t0 t1 rc
  t0=$(now)
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  t1=$(now)
  stop_time=$(secs "$t0" "$t1")
  [ "$rc" = 0 ] || fail "Solr exited with status $rc after SIGTERM"
  kill -0 "$pid" 2>/dev/null && fail "Solr still running after SIGTERM"
  pid=""
  for p in $(seq "$port" $((port + nodes - 1))) $((port + 1000)); do
    listening "$p" && fail "port $p still open after Solr stopped"
  done
  grep -q 'solr-launcher: stopped' "$log" || fail "no 'stopped' line from the launcher"
  echo "stopped cleanly (exit 0) in ${stop_time}s, ports closed"
}

# rss PID: the JVM's resident memory now and at its peak, in MiB
rss() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%d MiB (peak %d MiB)", r / 1024, h / 1024 }' "/proc/$1/status"; }

# expect_status CODE DESCRIPTION CURL-ARGS...: retries for a few seconds, since security.json
# changes reach the node through a ZooKeeper watch
expect_status() {
  local want="$1" what="$2" got=""
  shift 2
  for _ in $(seq 50); do
    got=$(curl -s -o "$tmp/body" -w '%{http_code}' "$@") || true
    [ "$got" = "$want" ] && { echo "$what: HTTP $got"; return 0; }
    sleep 0.2
  done
  fail "$what: HTTP $got, expected $want: $(head -c 400 "$tmp/body")"
}

# api DESCRIPTION CURL-ARGS...: a request as the admin that must answer 200 without errors
api() {
  local what="$1" code
  shift
  code=$(curl -s -o "$tmp/body" -w '%{http_code}' "${admin[@]}" "$@") || fail "$what: curl failed"
  [ "$code" = 200 ] || fail "$what: HTTP $code: $(head -c 600 "$tmp/body")"
  if grep -q '"errorMessages"' "$tmp/body"; then fail "$what: $(head -c 600 "$tmp/body")"; fi
  echo "$what: OK"
}

start_solr
first_startup=$startup
rss_ready=$(rss "$pid")
echo "JVM memory when ready: $rss_ready"

step "authentication"
expect_status 401 "anonymous request" "$B/admin/collections?action=LIST"
expect_status 401 "wrong password" -u "admin:wrong" "$B/admin/collections?action=LIST"
expect_status 200 "admin" "${admin[@]}" "$B/admin/collections?action=LIST"

step "configset, collections, alias"
(cd "$here/../../operators/solr-index/configsets/plone" && jar cfM "$tmp/plone.zip" .)
api "upload configset plone" -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/plone.zip" \
  "$B/admin/configs?action=UPLOAD&name=plone&wt=json"
api "create collection site1_v1" \
  "$B/admin/collections?action=CREATE&name=site1_v1&numShards=1&replicationFactor=1&collection.configName=plone&wt=json"
api "create collection other_v1" \
  "$B/admin/collections?action=CREATE&name=other_v1&numShards=1&replicationFactor=1&collection.configName=plone&wt=json"
api "create alias site1 -> site1_v1" "$B/admin/collections?action=CREATEALIAS&name=site1&collections=site1_v1&wt=json"

step "index and query through the alias"
cat > "$tmp/docs.json" <<'EOF'
[
  {"UID": "6f1c2a0e5b8d4c3e9a7b1d2e3f4a5b6c", "path_string": "/plone/conseil/deliberation-2024-03",
   "portal_type": "Document", "review_state": "published",
   "Title": "Délibération du conseil communal", "Description": "Séance du 12 mars 2024",
   "SearchableText": "Délibération du conseil communal relative à l'école communale",
   "created": "2024-03-12T10:00:00Z", "modified": "2024-03-13T09:30:00Z",
   "allowedRolesAndUsers": ["Anonymous"]},
  {"UID": "0a9b8c7d6e5f40312f1e0d9c8b7a6f5e", "path_string": "/plone/actualites/travaux",
   "portal_type": "News Item", "review_state": "private",
   "Title": "Travaux rue Haute", "Description": "Fermeture de la voirie",
   "SearchableText": "Travaux de voirie rue Haute",
   "created": "2024-04-01T08:00:00Z", "modified": "2024-04-02T08:00:00Z",
   "allowedRolesAndUsers": ["user:jdoe", "Manager"]}
]
EOF
api "index 2 documents into site1" -H 'Content-Type: application/json' --data-binary "@$tmp/docs.json" \
  "$B/site1/update?commit=true&wt=json"
api "query site1" "$B/site1/select?q=*:*&fl=UID,Title,portal_type,modified&sort=created%20asc&wt=json"
n=$(json 'd["response"]["numFound"]' < "$tmp/body")
[ "$n" = 2 ] || fail "expected 2 documents through the alias, got $n"
title=$(json 'd["response"]["docs"][0]["Title"]' < "$tmp/body")
[ "$title" = "Délibération du conseil communal" ] || fail "unexpected first title: $title"
echo "2 documents back through the alias, first: $title"
api "full text with accents folded and the security filter" \
  "$B/site1/select?q=deliberation%20ecole&fq=allowedRolesAndUsers:Anonymous&fq=review_state:published&fl=UID&wt=json"
uid=$(json 'd["response"]["numFound"], d["response"]["docs"][0]["UID"]' < "$tmp/body")
[ "$uid" = "(1, '6f1c2a0e5b8d4c3e9a7b1d2e3f4a5b6c')" ] || fail "full-text query gave $uid"
echo "full-text query found the one published document"

step "a user restricted to site1_v1, with the operator's rights"
site_password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
site=(-u "site1:$site_password")
api "create user site1" -H 'Content-Type: application/json' \
  --data-binary "{\"set-user\": {\"site1\": \"$site_password\"}}" "$B/admin/authentication"
api "give site1 the role site1" -H 'Content-Type: application/json' \
  --data-binary '{"set-user-role": {"site1": ["site1"]}}' "$B/admin/authorization"
# The rights are those the SolrIndex operator gives a site's user: tests/solr/site-rights.json is
# a copy of SITE_RIGHTS in crates/solr/src/lib.rs (a unit test of mutu-solr keeps them equal), and
# each right becomes one permission named mutu:<alias><suffix>, for the roles admin and the site's,
# before the catch-all `all`, all in one request (as Client::edit_permissions sends them).
python3 - "$here/site-rights.json" > "$tmp/permissions.json" <<'PY'
import json, sys
rights = json.load(open(sys.argv[1]))
cmds = [json.dumps("set-permission") + ": " + json.dumps({
    "name": "mutu:site1" + r["suffix"], "collection": ["site1_v1"], "path": r["path"],
    "method": r["method"], "role": ["admin", "site1"], "before": 1}) for r in rights]
print("{" + ", ".join(cmds) + "}")
PY
api "permissions mutu:site1*: the site rights on site1_v1, roles admin and site1" \
  -H 'Content-Type: application/json' --data-binary "@$tmp/permissions.json" "$B/admin/authorization"
expect_status 200 "site1 queries its alias site1" "${site[@]}" "$B/site1/select?q=*:*&rows=0&wt=json"
n=$(json 'd["response"]["numFound"]' < "$tmp/body")
[ "$n" = 2 ] || fail "site1 sees $n documents, expected 2"
expect_status 200 "site1 queries its collection site1_v1" "${site[@]}" "$B/site1_v1/select?q=*:*&rows=0&wt=json"
expect_status 200 "site1 searches with POST, as collective.solr does" "${site[@]}" \
  --data 'q=*:*&rows=0&wt=json' "$B/site1/select"
expect_status 200 "site1 indexes into its alias (XML, as collective.solr does)" "${site[@]}" \
  -H 'Content-Type: text/xml' --data-binary '<add><doc><field name="UID">s3</field><field name="Title">Ajout</field></doc></add>' \
  "$B/site1/update?commit=true"
expect_status 200 "site1 deletes that document again" "${site[@]}" \
  -H 'Content-Type: text/xml' --data-binary '<delete><id>s3</id></delete>' "$B/site1/update?commit=true"
expect_status 200 "site1 reads schema.xml, as collective.solr does" "${site[@]}" "$B/site1/admin/file/?file=schema.xml"
grep -q '<uniqueKey>UID</uniqueKey>' "$tmp/body" || fail "schema.xml as site1 has no uniqueKey UID"
expect_status 403 "site1 writes a config overlay on its own collection" "${site[@]}" \
  -H 'Content-Type: application/json' --data-binary '{"set-user-property": {"x": "y"}}' "$B/site1_v1/config"
expect_status 403 "site1 writes a config overlay through its alias" "${site[@]}" \
  -H 'Content-Type: application/json' --data-binary '{"set-user-property": {"x": "y"}}' "$B/site1/config"
expect_status 403 "site1 adds a request handler through the config API" "${site[@]}" \
  -H 'Content-Type: application/json' \
  --data-binary '{"add-requesthandler": {"name": "/x", "class": "solr.DumpRequestHandler"}}' "$B/site1/config"
expect_status 403 "site1 adds a field through the schema API" "${site[@]}" \
  -H 'Content-Type: application/json' --data-binary '{"add-field": {"name": "x", "type": "string"}}' "$B/site1/schema"
expect_status 403 "site1 reloads its collection" "${site[@]}" "$B/admin/collections?action=RELOAD&name=site1_v1"
expect_status 403 "site1 deletes the collection other_v1" "${site[@]}" "$B/admin/collections?action=DELETE&name=other_v1"
expect_status 403 "site1 lists the collections" "${site[@]}" "$B/admin/collections?action=LIST"
expect_status 403 "site1 lists the configsets" "${site[@]}" "$B/admin/configs?action=LIST"
expect_status 403 "site1 deletes the configset plone" "${site[@]}" "$B/admin/configs?action=DELETE&name=plone"
expect_status 403 "site1 reads security.json" "${site[@]}" "$B/admin/authentication"
expect_status 403 "site1 queries the collection other_v1" "${site[@]}" "$B/other_v1/select?q=*:*&rows=0&wt=json"
expect_status 403 "site1 queries other_v1 through its own collection's collection parameter" "${site[@]}" \
  "$B/site1_v1/select?q=*:*&rows=0&wt=json&collection=site1_v1,other_v1"
expect_status 403 "site1 indexes into other_v1" "${site[@]}" \
  -H 'Content-Type: text/xml' --data-binary '<add><doc><field name="UID">evil</field></doc></add>' "$B/other_v1/update"
expect_status 200 "admin reads the overlay of the shared configset (through other_v1)" "${admin[@]}" "$B/other_v1/config/overlay?wt=json"
if grep -q '"userProps"' "$tmp/body"; then fail "the shared configset got an overlay: $(head -c 400 "$tmp/body")"; fi
echo "the shared configset has no overlay"
expect_status 200 "admin queries other_v1" "${admin[@]}" "$B/other_v1/select?q=*:*&rows=0&wt=json"
expect_status 200 "admin reads the config overlay of site1_v1 (the catch-all keeps it the admin's)" "${admin[@]}" \
  "$B/site1_v1/config/overlay?wt=json"
expect_status 200 "admin lists the collections" "${admin[@]}" "$B/admin/collections?action=LIST"
n=$(json '"other_v1" in d["collections"]' < "$tmp/body")
[ "$n" = True ] || fail "other_v1 is gone"

rss_after=$(rss "$pid")
echo "JVM memory after the workload: $rss_after"
stop_solr
first_stop=$stop_time

if [ "${SMOKE_RESTART:-1}" != 0 ]; then
  start_solr
  restart_startup=$startup
  step "after the restart"
  expect_status 200 "site1 queries its alias site1" "${site[@]}" "$B/site1/select?q=*:*&rows=0&wt=json"
  n=$(json 'd["response"]["numFound"]' < "$tmp/body")
  [ "$n" = 2 ] || fail "after the restart site1 sees $n documents, expected 2"
  echo "the index, the alias and the user survived the restart"
  expect_status 403 "site1 queries the collection other_v1" "${site[@]}" "$B/other_v1/select?q=*:*&rows=0&wt=json"
  stop_solr
fi

ok=1
echo
echo "=== Solr smoke test passed"
java_version=$(java -version 2>&1 | head -n 1)
cat <<EOF
Solr 9.10.1 (solr-test-framework from Maven Central), $java_version, $nodes node(s)
build.sh first call:       ${build_first}s  (SMOKE_COLD=1 for a cold build)
build.sh second call:      ${build_warm}s
start-up to ready:         ${first_startup}s (empty data dir)${restart_startup:+, ${restart_startup}s (restart with data)}
stop after SIGTERM:        ${first_stop}s
JVM memory when ready:     $rss_ready
JVM memory after workload: $rss_after
EOF
