#!/usr/bin/env bash
# Starts a local SolrCloud in the foreground until SIGTERM/SIGINT (then it stops cleanly, exit 0):
#
#   tests/solr/run.sh DATA_DIR [PORT]
#
# Solr at http://127.0.0.1:PORT/solr (default 8983), ZooKeeper at 127.0.0.1:PORT+1000/solr, state
# (ZooKeeper data, cores, logs/solr.log) in DATA_DIR, which a later start reuses. Prints a line
# starting with "SOLR READY" once the node answers.
#
#   SOLR_ADMIN_PASSWORD or SOLR_ADMIN_PASSWORD_FILE   the admin's password (required)
#   SOLR_ADMIN_USER    the admin user (default admin)
#   SOLR_NODES         number of Solr nodes, on PORT, PORT+1, ... (default 1)
#   SOLR_HEAP          JVM heap (default 512m)
#   SOLR_JAVA_OPTS     more JVM options
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 DATA_DIR [PORT]" >&2
  exit 2
fi
data="$1"
port="${2:-8983}"
mkdir -p "$data"
data="$(cd "$data" && pwd)"
dir="$("$here/build.sh" | tail -n 1)"

heap="${SOLR_HEAP:-512m}"
# shellcheck disable=SC2086
exec java -Xms64m -Xmx"$heap" -XX:+UseSerialGC \
  -XX:+ExitOnOutOfMemoryError \
  -Dsolr.log.dir="$data/logs" \
  -Dlog4j2.configurationFile=mutu-solr-log4j2.xml \
  -Dzookeeper.admin.enableServer=false \
  -Dzookeeper.4lw.commands.whitelist=ruok,stat,srvr,mntr \
  -Dtests.zk.violationReportAction=IGNORE \
  -Djava.net.preferIPv4Stack=true \
  ${SOLR_JAVA_OPTS:-} \
  -cp "$dir/mutu-solr-launcher.jar:$dir/lib/*" \
  be.imio.mutu.solr.SolrLauncher --data-dir "$data" --port "$port" --nodes "${SOLR_NODES:-1}"
