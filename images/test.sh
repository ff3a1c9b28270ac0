#!/usr/bin/env bash
# Runs mutu's images for real, with runc, the way mutu's pods use them.
#
#   images/test.sh [NAME...]     # default: every Plone image, generic and mutu; progress on stderr
#
# Each image comes from images/build.sh (built when it is not cached: minutes when cold). Its
# archive is unpacked with umoci; every container gets its own overlay over that root filesystem,
# runs with the image's own user, entrypoint and environment unless said otherwise, and shares
# the host's network (the ports below, on 127.0.0.1 only). /opt/mutu holds what mutu's site
# operator puts in its ConfigMap (taken from the operator's golden file of children, zeo.conf
# with the test's address instead of 0.0.0.0:8100).
#
# A Plone image (plone-*):
#   1. a ZEO server: `runzeo -C /opt/mutu/zeo.conf` (the StatefulSet's command) on an empty /data;
#   2. an instance: no command (the image's entrypoint), ZEO_ADDRESS, PLONE_ADMIN_USER/PASSWORD:
#      GET /ok answers 200 "OK", the admin user logs in to /manage_main, anonymous does not;
#   3. the site creation Job's command `zconsole run /app/etc/zope.conf /opt/mutu/create_site.py
#      Plone TITLE fr` (no entrypoint) exits 0; then GET /Plone is Plone's page with the title,
#      GET /Plone/++api++ answers JSON;
#   4. the upgrade Job's command `zconsole run /app/etc/zope.conf /opt/mutu/upgrade_site.py Plone`,
#      as root this time (the image must also work as root), exits 0;
#   5. the instance restarted (a new container) still serves the site, and its new
#      PLONE_ADMIN_PASSWORD replaced the old one (Plone made the root user folder a PAS by now).
# generic: serves / and /ok, stores POST /notes on /data; a new container on the same /data
# still lists the note.
# mutu: as charts/mutu runs the maintenance page: only args (`maintenance-page
# --retry-after=600`, the image's entrypoint `mutu` before them), MUTU_* in the environment, the
# image's user (the chart's 65532), a read-only root filesystem, no capabilities: /healthz answers
# 200, a page 503 with Retry-After.
#
# Needs root, runc, umoci, curl, python3. Ports (change them if they are taken): ZEO
# $MUTU_TEST_ZEO_PORT (28100), Zope $MUTU_TEST_HTTP_PORT (28080), generic $MUTU_TEST_GENERIC_PORT
# (28081), mutu $MUTU_TEST_MUTU_PORT (28082). Fails, saying why, when something is missing; skips nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
zeo_port="${MUTU_TEST_ZEO_PORT:-28100}"
http_port="${MUTU_TEST_HTTP_PORT:-28080}"
generic_port="${MUTU_TEST_GENERIC_PORT:-28081}"
mutu_port="${MUTU_TEST_MUTU_PORT:-28082}"
golden="$repo/operators/site/src/build/testdata/children.json"

say() { echo "==> $*" >&2; }
die() { echo "images/test.sh: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (runc, overlay mounts)"
for tool in runc umoci curl python3 tar; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install runc umoci curl)"
done
[ -f "$golden" ] || die "$golden is missing"

names=("$@")
if [ ${#names[@]} = 0 ]; then
  for d in "$here"/plone-*/ "$here"/generic/ "$here"/mutu/; do
    [ -f "$d/image" ] && names+=("$(basename "$d")")
  done
fi

for port in "$zeo_port" "$http_port" "$generic_port" "$mutu_port"; do
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" ||
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    die "port $port on 127.0.0.1 is taken: set MUTU_TEST_ZEO_PORT, MUTU_TEST_HTTP_PORT, MUTU_TEST_GENERIC_PORT or MUTU_TEST_MUTU_PORT"
  fi
done

work="$(mktemp -d /var/tmp/mutu-image-test.XXXXXX)"
state="$work/runc"
containers=()
mounts=()
cleanup() {
  local id m
  for id in "${containers[@]}"; do
    runc --root "$state" kill "$id" KILL >/dev/null 2>&1 || true
    runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
  done
  for m in "${mounts[@]}"; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The image archive of NAME from build.sh (built when missing), unpacked: prints the rootfs path
# and leaves the image's runtime config beside it.
unpack() {
  local name="$1" line ref archive tag
  line="$("$here/build.sh" "$name" | tail -n 1)" || die "images/build.sh $name failed"
  ref="${line%%$'\t'*}"
  archive="${line#*$'\t'}"
  [ -f "$archive" ] || die "image $name: no archive at $archive"
  tag="${ref##*:}"
  say "$name: $ref from $archive"
  mkdir -p "$work/$name/layout"
  tar -C "$work/$name/layout" -xf "$archive"
  umoci unpack --image "$work/$name/layout:$tag" "$work/$name/bundle" >/dev/null ||
    die "umoci cannot unpack $archive"
  rm -rf "$work/$name/layout"
  echo "$work/$name/bundle"
}

# start NAME BUNDLE ID DETACH MODS_JSON: a container of the unpacked image in its own overlay.
# MODS_JSON: {"args": [...] or null (the image's), "env": {...}, "binds": {dest: src}, "ro_binds":
# {dest: src}, "uid": n or null (the image's), "readonly": root filesystem read-only,
# "drop_all_capabilities", "entrypoint": the image's entrypoint, "entrypoint_args": args after it}. Detached: runs in the background (logs in
# $work/ID.log); else waits for it and returns its exit status.
start() {
  local bundle="$1" id="$2" detach="$3" mods="$4" c="$work/c/$2"
  mkdir -p "$c/upper" "$c/work" "$c/merged"
  mount -t overlay overlay -o "lowerdir=$bundle/rootfs,upperdir=$c/upper,workdir=$c/work" \
    "$c/merged"
  mounts+=("$c/merged")
  python3 - "$bundle/config.json" "$c/config.json" "$c/merged" "$id" "$mods" <<'PY'
import json, sys
src, dst, root, cid, mods = sys.argv[1:]
mods = json.loads(mods)
cfg = json.load(open(src))
cfg["root"] = {"path": root, "readonly": bool(mods.get("readonly"))}
proc = cfg["process"]
proc["terminal"] = False
if mods.get("args"):
    proc["args"] = mods["args"]
env = dict(e.split("=", 1) for e in proc.get("env", []))
env.update(mods.get("env", {}))
proc["env"] = [f"{k}={v}" for k, v in env.items()]
if mods.get("uid") is not None:
    proc["user"] = {"uid": mods["uid"], "gid": mods["uid"]}
# The capabilities containerd gives a container of a pod that asks for none.
caps = ["CAP_" + c for c in ("CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID "
                             "SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE").split()]
if mods.get("drop_all_capabilities"):
    caps = []
proc["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
proc["noNewPrivileges"] = bool(mods.get("drop_all_capabilities"))
if mods.get("entrypoint_args") is not None:
    # Kubernetes `args` without `command`: the image's entrypoint, then these.
    proc["args"] = proc["args"][:len(mods["entrypoint"])] + mods["entrypoint_args"]
linux = cfg["linux"]
# The host's network: the containers listen on and talk to 127.0.0.1.
linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
linux["cgroupsPath"] = f"/mutu-image-test/{cid}"
for dest, source in mods.get("binds", {}).items():
    cfg["mounts"].append({"destination": dest, "type": "bind", "source": source,
                          "options": ["rbind", "rw"]})
for dest, source in mods.get("ro_binds", {}).items():
    cfg["mounts"].append({"destination": dest, "type": "bind", "source": source,
                          "options": ["rbind", "ro"]})
json.dump(cfg, open(dst, "w"), indent=1)
PY
  containers+=("$id")
  if [ "$detach" = detach ]; then
    runc --root "$state" run --detach --bundle "$c" "$id" >"$work/$id.log" 2>&1 </dev/null ||
      { cat "$work/$id.log" >&2; die "runc could not start $id"; }
  else
    local status=0
    runc --root "$state" run --bundle "$c" "$id" >"$work/$id.log" 2>&1 </dev/null || status=$?
    runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
    return $status
  fi
}

# stop ID: SIGTERM, then SIGKILL after 20 s; the container is deleted and its overlay unmounted.
stop() {
  local id="$1" i
  runc --root "$state" kill "$id" TERM >/dev/null 2>&1 || true
  for i in $(seq 40); do
    [ "$(runc --root "$state" state "$id" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = running ] || break
    sleep 0.5
  done
  runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
  umount "$work/c/$id/merged" 2>/dev/null || true
}

running() {
  [ "$(runc --root "$state" state "$1" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = running ]
}

# wait_http ID URL SECONDS: until URL answers 200, while container ID runs.
wait_http() {
  local id="$1" url="$2" seconds="$3" i
  for i in $(seq "$seconds"); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url")" = 200 ]; then
      say "$url answers 200 after $i s"
      return 0
    fi
    running "$id" || { tail -40 "$work/$id.log" >&2; die "$id stopped before $url answered"; }
    sleep 1
  done
  tail -40 "$work/$id.log" >&2
  die "$url did not answer 200 within $seconds s"
}

wait_port() {
  local id="$1" port="$2" seconds="$3" i
  for i in $(seq "$seconds"); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))" &&
      return 0
    running "$id" || { tail -40 "$work/$id.log" >&2; die "$id stopped before port $port opened"; }
    sleep 1
  done
  tail -40 "$work/$id.log" >&2
  die "port $port did not open within $seconds s"
}

# check WHAT COMMAND...: fails the test, saying WHAT, when COMMAND fails.
check() {
  local what="$1"
  shift
  if ! "$@"; then
    die "$what"
  fi
  say "ok: $what"
}

test_plone() {
  local name="$1" bundle started=$SECONDS
  bundle="$(unpack "$name")"
  local id="t$$-$name" opt="$work/$name/opt-mutu" data="$work/$name/data"
  # mutu's ConfigMap of a ZEO site, as the site operator renders it.
  mkdir -p "$opt" "$data"
  python3 - "$golden" "$opt" "$zeo_port" <<'PY'
import json, os, sys
golden, opt, port = sys.argv[1:]
data = json.load(open(golden))["zeo"]["config"]["data"]
assert "0.0.0.0:8100" in data["zeo.conf"], data["zeo.conf"]
data["zeo.conf"] = data["zeo.conf"].replace("0.0.0.0:8100", f"127.0.0.1:{port}")
for name, text in data.items():
    with open(os.path.join(opt, name), "w") as f:
        f.write(text)
PY
  chmod -R a+rX "$opt"
  chown 1000:1000 "$data"
  local env
  env="{\"SITE_ID\": \"Plone\", \"ZEO_ADDRESS\": \"127.0.0.1:$zeo_port\"}"

  say "$name: ZEO server (runzeo -C /opt/mutu/zeo.conf) on 127.0.0.1:$zeo_port"
  start "$bundle" "$id-zeo" detach "{\"args\": [\"runzeo\", \"-C\", \"/opt/mutu/zeo.conf\"],
    \"binds\": {\"/data\": \"$data\"}, \"ro_binds\": {\"/opt/mutu\": \"$opt\"}}"
  wait_port "$id-zeo" "$zeo_port" 60
  check "the ZEO server keeps its FileStorage in /data/filestorage" test -f "$data/filestorage/Data.fs"
  check "the ZEO server runs as uid 1000" test "$(stat -c %u "$data/filestorage/Data.fs")" = 1000

  say "$name: instance (the image's entrypoint) on 127.0.0.1:$http_port"
  local ienv
  ienv="{\"SITE_ID\": \"Plone\", \"ZEO_ADDRESS\": \"127.0.0.1:$zeo_port\",
    \"ZOPE_LISTEN\": \"127.0.0.1:$http_port\", \"PLONE_ADMIN_USER\": \"admin\",
    \"PLONE_ADMIN_PASSWORD\": \"t0p\$ecret\"}"
  start "$bundle" "$id-instance" detach "{\"env\": $ienv, \"ro_binds\": {\"/opt/mutu\": \"$opt\"}}"
  wait_http "$id-instance" "http://127.0.0.1:$http_port/ok" 240
  check "GET /ok answers OK" test "$(curl -s "http://127.0.0.1:$http_port/ok")" = OK
  check "the admin user reaches /manage_main" test \
    "$(curl -s -o /dev/null -w '%{http_code}' -u 'admin:t0p$ecret' "http://127.0.0.1:$http_port/manage_main")" = 200
  check "anonymous does not reach /manage_main" test \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/manage_main")" = 401

  say "$name: site creation Job: zconsole run /app/etc/zope.conf /opt/mutu/create_site.py Plone ..."
  local status=0
  start "$bundle" "$id-create" wait "{\"args\": [\"zconsole\", \"run\", \"/app/etc/zope.conf\",
    \"/opt/mutu/create_site.py\", \"Plone\", \"Mutu image test\", \"fr\"], \"env\": $env,
    \"ro_binds\": {\"/opt/mutu\": \"$opt\"}}" || status=$?
  tail -5 "$work/$id-create.log" >&2
  check "create_site.py exits 0" test "$status" = 0
  local page="$work/$name/page.html"
  curl -s -o "$page" -w '%{http_code}' "http://127.0.0.1:$http_port/Plone" >"$page.status"
  check "GET /Plone answers 200" test "$(cat "$page.status")" = 200
  check "GET /Plone is Plone's page with the site's title" \
    grep -q 'Mutu image test' "$page"
  check "GET /Plone is made by Plone" grep -qi 'plone' "$page"
  check "GET /Plone/++api++ answers the site as JSON" python3 -c "
import json, sys, urllib.request
r = json.load(urllib.request.urlopen('http://127.0.0.1:$http_port/Plone/++api++'))
sys.exit(r.get('@type') != 'Plone Site')"

  say "$name: upgrade Job, as root: zconsole run /app/etc/zope.conf /opt/mutu/upgrade_site.py Plone"
  status=0
  start "$bundle" "$id-upgrade" wait "{\"args\": [\"zconsole\", \"run\", \"/app/etc/zope.conf\",
    \"/opt/mutu/upgrade_site.py\", \"Plone\"], \"env\": $env, \"uid\": 0,
    \"ro_binds\": {\"/opt/mutu\": \"$opt\"}}" || status=$?
  tail -5 "$work/$id-upgrade.log" >&2
  check "upgrade_site.py exits 0 as root" test "$status" = 0

  say "$name: a new instance container, with a new admin password, serves the same site"
  stop "$id-instance"
  start "$bundle" "$id-instance2" detach "{\"env\": ${ienv/t0p\$ecret/n3w-secret},
    \"ro_binds\": {\"/opt/mutu\": \"$opt\"}}"
  wait_http "$id-instance2" "http://127.0.0.1:$http_port/ok" 240
  curl -s -o "$page" "http://127.0.0.1:$http_port/Plone"
  check "the restarted instance serves the site" grep -q 'Mutu image test' "$page"
  check "the admin user has the new password (the root user folder is Plone's now)" test \
    "$(curl -s -o /dev/null -w '%{http_code}' -u 'admin:n3w-secret' "http://127.0.0.1:$http_port/manage_main")" = 200
  check "the old admin password no longer works" test \
    "$(curl -s -o /dev/null -w '%{http_code}' -u 'admin:t0p$ecret' "http://127.0.0.1:$http_port/manage_main")" = 401
  stop "$id-instance2"
  stop "$id-zeo"
  say "$name: passed in $((SECONDS - started)) s"
}

test_generic() {
  local name="$1" bundle started=$SECONDS
  bundle="$(unpack "$name")"
  local id="t$$-$name" data="$work/$name/data"
  mkdir -p "$data"
  chown 1000:1000 "$data"
  local mods
  mods="{\"env\": {\"GENERIC_LISTEN\": \"127.0.0.1:$generic_port\", \"SITE_ID\": \"atal\"},
    \"binds\": {\"/data\": \"$data\"}}"
  start "$bundle" "$id-1" detach "$mods"
  wait_http "$id-1" "http://127.0.0.1:$generic_port/ok" 30
  check "GET / answers 200" test \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$generic_port/")" = 200
  local note="note $$ $(date +%s)"
  check "POST /notes answers 201" test \
    "$(curl -s -o /dev/null -w '%{http_code}' --data-binary "$note" "http://127.0.0.1:$generic_port/notes")" = 201
  check "the note is in /data/notes.txt, written by uid 1000" test \
    "$(stat -c %u "$data/notes.txt")" = 1000
  stop "$id-1"
  start "$bundle" "$id-2" detach "$mods"
  wait_http "$id-2" "http://127.0.0.1:$generic_port/ok" 30
  check "a new container on the same /data lists the note" \
    grep -qxF "$note" <(curl -s "http://127.0.0.1:$generic_port/notes")
  stop "$id-2"
  say "$name: passed in $((SECONDS - started)) s"
}

test_mutu() {
  local name="$1" bundle started=$SECONDS
  bundle="$(unpack "$name")"
  local id="t$$-$name" entrypoint
  entrypoint="$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["process"]["args"]))' "$bundle/config.json")"
  check "the image's entrypoint is mutu" test "$entrypoint" = '["/usr/local/bin/mutu"]'
  start "$bundle" "$id" detach "{\"entrypoint\": $entrypoint,
    \"entrypoint_args\": [\"maintenance-page\", \"--retry-after=600\"],
    \"env\": {\"MUTU_LOG\": \"info\", \"MUTU_LOG_FORMAT\": \"json\",
      \"MUTU_MAINTENANCE_LISTEN\": \"127.0.0.1:$mutu_port\"},
    \"readonly\": true, \"drop_all_capabilities\": true}"
  wait_http "$id" "http://127.0.0.1:$mutu_port/healthz" 30
  check "the maintenance page runs as uid 65532" test \
    "$(awk '/^Uid:/ {print $2}' "/proc/$(runc --root "$state" state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')/status")" = 65532
  local headers="$work/$name.headers"
  curl -s -o /dev/null -D "$headers" "http://127.0.0.1:$mutu_port/" || true
  check "a page answers 503 with Retry-After: 600" grep -qi '^retry-after: 600' "$headers"
  check "and 503" grep -q '^HTTP/1.1 503' "$headers"
  stop "$id"
  say "$name: passed in $((SECONDS - started)) s"
}

for name in "${names[@]}"; do
  name="${name%/}"
  case "$name" in
    plone-*) test_plone "$name" ;;
    generic) test_generic "$name" ;;
    mutu) test_mutu "$name" ;;
    *) die "no test for image $name" ;;
  esac
done
say "all passed: ${names[*]}"
