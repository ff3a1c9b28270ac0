#!/bin/sh
# Back up and restore the PostgreSQL database of a site whose ZODB lives in RelStorage.
#
# mutu runs this in Jobs, in a PostgreSQL client image (it needs pg_dump, pg_restore, psql and a
# POSIX userland: sh, awk, sed, coreutils; flock when there is one), with the libpq connection
# string of the site's database in RELSTORAGE_DSN (e.g. `host=db port=5432 dbname=delib
# user=delib password=...`, or a postgresql:// URI) and the member's backup volume at /backups:
#
#     sh pg_backup.sh backup  --repo /backups/SITE --id ID
#     sh pg_backup.sh restore --repo /backups/SITE --id ID
#     sh pg_backup.sh prune   --repo /backups/SITE --keep ID [--keep ID ...]
#
# The repository REPO holds, in REPO/pg/:
#     ID.dump                  `pg_dump --format=custom` of the DSN's database (large objects,
#                              which RelStorage keeps its blobs in, included)
#     ID.json                  what the backup recorded: its time and size, the database, and the
#                              rows of every table and the number of large objects in the dump
#     before-restore-STAMP.*   the database as it was just before a restore (STAMP: UTC,
#                              YYYYMMDDTHHMMSSZ), a backup like the others (it can be restored with
#                              --id before-restore-STAMP); restore and prune never delete these
#     .lock                    backup, restore and prune of one repository run one at a time
#                              (when the image has flock)
#
# backup (the site may keep running: pg_dump reads one consistent snapshot): the dump is written
# to REPO/pg/.ID.dump.partial, read back in full (pg_restore, counting the rows of every table:
# a dump that cannot be read fails the backup), then ID.json and ID.dump are renamed into place:
# an interrupted run never leaves a half dump under the backup's name. Prints one JSON line:
#     {"id": ID, "time": RFC3339 UTC, "size": BYTES, "location": DUMP PATH}
# `time` is when the dump started (its snapshot), `size` the dump's size. Running backup again
# with an existing ID does nothing and prints the same line. IDs: letters, digits, `.`, `_`, `-`,
# not starting with `.`; `before-restore-*` is reserved.
#
# restore (the site stopped: refused while other sessions are connected to the database, once
# PG_BACKUP_IN_USE_WAIT seconds, 30 by default, have passed without them ending): the dump must
# have a readable table of contents; the database as it is is saved by a backup named
# before-restore-STAMP; then the dump is restored in ONE transaction: `pg_restore --clean
# --if-exists --single-transaction --no-owner` writes the SQL, psql runs it after unlinking every
# large object (so that the database ends up with exactly the dump's), and at the end of that
# same transaction every table of the dump must have as many rows as the dump has (and as ID.json
# recorded, when there is one) and the database as many large objects. Only then is it committed:
# any failure (an unreadable or corrupted dump, an SQL error, a count that does not match) rolls
# all of it back, the database is as it was. Objects the database has and the dump does not
# (other than large objects) are left as they are; tables among them are named in a warning.
# Prints one JSON line:
#     {"id": ID, "before": PATH OF THE before-restore DUMP}
#
# prune: deletes ID.dump and ID.json of every backup not kept, never before-restore-* (nor
# anything else but the leftovers of killed runs, when it holds the lock). Refuses, deleting
# nothing, when none of the --keep backups exists; --keep names without a backup are ignored (and
# listed). Prints
#     {"kept": [IDS], "unknown": [IDS], "deleted": [IDS]}
#
# Exit status: 0 done; 1 failed, the last line on stderr being `pg_backup: FAILED: STEP: REASON`
# (STEP: pg_dump, check dump, read dump, connect, restore, verify, prune, lock, write,
# repository); 2 bad arguments (or RELSTORAGE_DSN unset). Progress goes to stderr, stdout only has
# the JSON. Files are written with umask 077.
#
# The password of the DSN never appears in what this prints (every message is filtered), but it
# is in the tools' command lines (as in the DSN), visible to the Job's own processes only.
#
# For tests only: PG_BACKUP_INJECT_FAILURE=verify makes the last check of a restore fail (after
# everything was restored, before the COMMIT), to check that nothing of it stays.

PROG=pg_backup
umask 077
# Never prompt for a password, don't wait forever for a server, name the sessions.
: "${PGCONNECT_TIMEOUT:=30}"
: "${PGAPPNAME:=mutu-pg-backup}"
export PGCONNECT_TIMEOUT PGAPPNAME

usage() {
  cat >&2 <<'EOF'
usage: sh pg_backup.sh backup  --repo REPO --id ID
       sh pg_backup.sh restore --repo REPO --id ID
       sh pg_backup.sh prune   --repo REPO --keep ID [--keep ID ...]
The database: the libpq connection string in RELSTORAGE_DSN (backup and restore).
EOF
}

usage_error() {
  usage
  printf '%s: usage: %s\n' "$PROG" "$1" >&2
  exit 2
}

# --- Keeping the password out of every message ------------------------------------------------

SECRET=
SECRET_RAW=

# Sets SECRET (and SECRET_RAW, its form in the string when quoted or escaped) to the password of
# a libpq connection string: `key = value` pairs, values bare (\ escapes the next character) or
# in single quotes (\' and \\), or a URI postgresql://user:password@host/db?password=....
dsn_password() {
  s=$1
  case $s in
  postgresql://* | postgres://*)
    rest=${s#*://}
    auth=${rest%%[/?]*}
    case $auth in *@*)
      userinfo=${auth%@*}
      case $userinfo in *:*) SECRET=${userinfo#*:} ;; esac
      ;;
    esac
    case $s in *[?\&]password=*)
      v=${s#*[?&]password=}
      SECRET_RAW=${v%%&*}
      [ -n "$SECRET" ] || { SECRET=$SECRET_RAW; SECRET_RAW=; }
      ;;
    esac
    return
    ;;
  esac
  ws=' 	
'
  while :; do
    s=${s#"${s%%[!$ws]*}"}
    [ -n "$s" ] || return
    key=${s%%[=$ws]*}
    s=${s#"$key"}
    s=${s#"${s%%[!$ws]*}"}
    s=${s#=}
    s=${s#"${s%%[!$ws]*}"}
    val=
    raw=
    case $s in
    \'*)
      s=${s#?}
      raw="'"
      while [ -n "$s" ]; do
        c=${s%"${s#?}"}
        s=${s#?}
        raw=$raw$c
        case $c in
        \\) c=${s%"${s#?}"}; s=${s#?}; raw=$raw$c; val=$val$c ;;
        \') break ;;
        *) val=$val$c ;;
        esac
      done
      ;;
    *)
      while [ -n "$s" ]; do
        c=${s%"${s#?}"}
        case $ws in *"$c"*) break ;; esac
        s=${s#?}
        raw=$raw$c
        case $c in
        \\) c=${s%"${s#?}"}; s=${s#?}; raw=$raw$c; val=$val$c ;;
        *) val=$val$c ;;
        esac
      done
      ;;
    esac
    if [ "$key" = password ]; then
      SECRET=$val
      [ "$raw" != "$val" ] && SECRET_RAW=$raw
    fi
  done
}

# Prints its argument with every occurrence of the password replaced by ***.
redact() {
  line=$1
  for secret in "$SECRET_RAW" "$SECRET"; do
    [ -n "$secret" ] || continue
    out=
    while :; do
      case $line in
      *"$secret"*)
        out=$out${line%%"$secret"*}'***'
        line=${line#*"$secret"}
        ;;
      *) break ;;
      esac
    done
    line=$out$line
  done
  printf '%s\n' "$line"
}

say() {
  redact "$PROG: $*" >&2
}

# Copies a tool's stderr (a file) to ours, password removed.
show() {
  [ -s "$1" ] || return 0
  while IFS= read -r l || [ -n "$l" ]; do
    redact "  $l" >&2
  done <"$1"
}

# The reason in a tool's stderr (a file): its last error line, else its last line.
reason_in() {
  [ -s "$1" ] || { echo "${2:-no message}"; return; }
  awk '{ sub(/^psql:[^ ]*: /, ""); last = $0 }
       /ERROR:|FATAL:|error:|fatal:/ { err = $0 }
       END { if (err != "") print err; else print last }' "$1"
}

fail() {
  redact "$PROG: FAILED: $1: $2" >&2
  exit 1
}

# --- JSON ---------------------------------------------------------------------------------------

json_str() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# --- Reading dumps ------------------------------------------------------------------------------
#
# One awk program over pg_restore's SQL output. It counts the rows of every table (the lines of
# its COPY block) and the large objects (lo_create), and writes them to the file `counts`:
#     T <tab> ROWS <tab> TABLE (as the dump names it, quoted where needed)
#     L <tab> LARGE OBJECTS
# mode=count: only that. mode=filter: also passes the SQL on, for psql, with the transaction made
# ours: it starts with BEGIN and the unlinking of every large object (pg_restore's own BEGIN, the
# first top-level line that is exactly `BEGIN;`, is dropped) and its final top-level COMMIT is held
# back; when the output ended with that COMMIT, the file `complete` is written, and the caller
# then sends the checks and the COMMIT itself. Lines of COPY data are never taken for statements.
# mode=json (on a counts file): the "large_objects" and "rows" members of ID.json.
# mode=verify (on a counts file): the SQL checking the database against the counts.
AWK_PROG='
function ident(s,   name, i, n, c) {
  name = ""
  while (1) {
    if (substr(s, 1, 1) == "\"") {
      n = length(s)
      for (i = 2; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\"") { if (substr(s, i + 1, 1) == "\"") { i++; continue } break }
      }
      name = name substr(s, 1, i); s = substr(s, i + 1)
    } else {
      match(s, /^[^." ]+/)
      name = name substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
    }
    if (substr(s, 1, 1) != ".") return name
    name = name "."; s = substr(s, 2)
  }
}
function sqlstr(s,   q) { q = sprintf("%c", 39); gsub(q, q q, s); return q s q }
function jsonstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
BEGIN {
  FS = "\n"
  if (mode == "filter") {
    print "BEGIN;"
    print "SELECT pg_catalog.count(pg_catalog.lo_unlink(oid)) FROM pg_catalog.pg_largeobject_metadata;"
  }
}
mode == "json" || mode == "verify" {
  split($0, f, "\t")
  if (f[1] == "T") { nt++; tname[nt] = substr($0, length(f[1]) + length(f[2]) + 3); tcount[nt] = f[2] }
  if (f[1] == "L") nlo = f[2]
  next
}
incopy {
  if ($0 == "\\.") { incopy = 0; nt++; tname[nt] = cur; tcount[nt] = rows }
  else rows++
  if (mode == "filter") print
  next
}
{
  if (substr($0, 1, 5) == "COPY " && $0 ~ / FROM stdin;$/) { incopy = 1; rows = 0; cur = ident(substr($0, 6)) }
  else if (index($0, "SELECT pg_catalog.lo_create(") == 1) nlo++
  if (mode != "filter") next
  if (!begun && $0 == "BEGIN;") { begun = 1; next }
  if (held) {
    if ($0 == "" || substr($0, 1, 2) == "--" || substr($0, 1, 11) == "\\unrestrict") { tail = tail $0 "\n"; next }
    printf "COMMIT;\n%s", tail; held = 0; tail = ""
  }
  if ($0 == "COMMIT;") { held = 1; tail = ""; next }
  print
}
END {
  if (mode == "json") {
    printf "  \"large_objects\": %d,\n  \"rows\": {", nlo
    for (i = 1; i <= nt; i++) printf "%s\n    %s: %d", (i > 1 ? "," : ""), jsonstr(tname[i]), tcount[i]
    printf "\n  }\n"
    exit 0
  }
  if (mode == "verify") {
    for (i = 1; i <= nt; i++)
      print "DO $pg_backup$ DECLARE n bigint; BEGIN SELECT pg_catalog.count(*) INTO n FROM ONLY " tname[i] "; " \
        "IF n <> " tcount[i] " THEN RAISE EXCEPTION " sqlstr("pg_backup verify: table % has % rows, the backup " tcount[i]) \
        ", " sqlstr(tname[i]) ", n; END IF; END $pg_backup$;"
    print "DO $pg_backup$ DECLARE n bigint; BEGIN SELECT pg_catalog.count(*) INTO n FROM pg_catalog.pg_largeobject_metadata; " \
      "IF n <> " (nlo + 0) " THEN RAISE EXCEPTION " sqlstr("pg_backup verify: % large objects, the backup " (nlo + 0)) \
      ", n; END IF; END $pg_backup$;"
    list = ""
    for (i = 1; i <= nt; i++) list = list (i > 1 ? ", " : "") sqlstr(tname[i])
    print "DO $pg_backup$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::pg_catalog.regclass::text AS t " \
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace " \
      "WHERE c.relkind IN (" sqlstr("r") ", " sqlstr("p") ") AND s.nspname <> " sqlstr("information_schema") \
      " AND s.nspname !~ " sqlstr("^pg_") " AND c.oid::pg_catalog.regclass::text <> ALL (ARRAY[" list "]::text[]) ORDER BY 1 LOOP " \
      "RAISE WARNING " sqlstr("pg_backup: table % is not in the backup: left as it is") ", r.t; END LOOP; END $pg_backup$;"
    exit 0
  }
  for (i = 1; i <= nt; i++) printf "T\t%d\t%s\n", tcount[i], tname[i] > counts
  printf "L\t%d\n", nlo > counts
  if (incopy) printf "E\ttruncated\n" > counts
  if (mode == "filter" && begun && held && !incopy) { printf "%s", tail; print "done" > complete }
}
'

# count_dump DUMP COUNTS: reads the whole dump; its counts into the file COUNTS.
count_dump() {
  rm -f "$work/read.rc"
  { pg_restore -f - "$1" 2>"$work/read.err"; echo $? >"$work/read.rc"; } |
    awk -v mode=count -v counts="$2" "$AWK_PROG"
  [ "$(cat "$work/read.rc" 2>/dev/null)" = 0 ] && [ -s "$2" ] && ! grep_e "$2"
}

# Whether a counts file says the SQL was cut short.
grep_e() {
  awk -F '\t' '$1 == "E" { found = 1 } END { exit !found }' "$1"
}

# The members of an ID.json that describe the dump's content (compared at restore).
content_of() {
  sed -n '/^  "large_objects": /,/^  }$/p' "$1"
}

# --- Commands -----------------------------------------------------------------------------------

valid_id() {
  case $1 in
  '' | .* | *[!A-Za-z0-9._-]*) return 1 ;;
  esac
  return 0
}

# Takes the repository's lock when the image has flock (else runs unlocked).
lock() {
  command -v flock >/dev/null 2>&1 || return 0
  (: >>"$pg/.lock") 2>/dev/null || fail lock "cannot open $pg/.lock"
  exec 9>>"$pg/.lock"
  # Polled: busybox's flock has no timeout.
  waited=0
  while ! flock -n 9; do
    [ "$waited" = 0 ] && say "waiting for another run on $pg to finish ($pg/.lock)"
    [ "$waited" -ge 3600 ] && fail lock "another run on $pg still holds $pg/.lock after an hour"
    sleep 5
    waited=$((waited + 5))
  done
  LOCKED=1
}

# Prints the result line of the backup whose ID.json is $1.
result_of() {
  rid=$(sed -n 's/^  "id": "\(.*\)",$/\1/p' "$1")
  rtime=$(sed -n 's/^  "time": "\(.*\)",$/\1/p' "$1")
  rsize=$(sed -n 's/^  "size": \([0-9]*\),$/\1/p' "$1")
  rloc=$(sed -n 's/^  "location": \(".*"\),$/\1/p' "$1")
  [ -n "$rid" ] && [ -n "$rtime" ] && [ -n "$rsize" ] && [ -n "$rloc" ] || return 1
  printf '{"id": "%s", "time": "%s", "size": %s, "location": %s}\n' "$rid" "$rtime" "$rsize" "$rloc"
}

# do_backup ID: the backup ID of the database (when not there yet); its result line in RESULT.
do_backup() {
  bid=$1
  dump=$pg/$bid.dump
  meta=$pg/$bid.json
  if [ -f "$dump" ] && [ -f "$meta" ] && RESULT=$(result_of "$meta"); then
    say "backup $bid exists already ($dump)"
    return 0
  fi
  part=$pg/.$bid.dump.partial
  mpart=$pg/.$bid.json.partial
  PARTIAL1=$part
  PARTIAL2=$mpart
  rm -f "$part" "$mpart"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  say "backup $bid: pg_dump into $dump"
  if ! pg_dump --no-password --format=custom --file="$part" --dbname="$RELSTORAGE_DSN" 2>"$work/dump.err"; then
    show "$work/dump.err"
    rm -f "$part"
    fail pg_dump "$(reason_in "$work/dump.err" "pg_dump failed")"
  fi
  show "$work/dump.err"
  say "backup $bid: reading the dump back"
  if ! count_dump "$part" "$work/counts.$bid"; then
    show "$work/read.err"
    rm -f "$part"
    fail "check dump" "$(reason_in "$work/read.err" "the dump cannot be read back in full")"
  fi
  size=$(wc -c <"$part" | tr -d ' ')
  database=$(pg_restore -l "$part" 2>/dev/null | sed -n 's/^;[ 	]*dbname: //p' | head -n 1)
  {
    printf '{\n'
    printf '  "id": "%s",\n' "$bid"
    printf '  "time": "%s",\n' "$started"
    printf '  "size": %s,\n' "$size"
    printf '  "location": %s,\n' "$(json_str "$dump")"
    printf '  "database": %s,\n' "$(json_str "$database")"
    awk -v mode=json "$AWK_PROG" "$work/counts.$bid"
    printf '}\n'
  } >"$mpart" || fail "write" "cannot write $mpart"
  # The manifest first: a dump under its final name always has its manifest.
  mv -f "$mpart" "$meta" || fail "write" "cannot rename $mpart to $meta"
  mv -f "$part" "$dump" || fail "write" "cannot rename $part to $dump"
  PARTIAL1=
  PARTIAL2=
  sync "$dump" "$meta" "$pg" 2>/dev/null || :
  RESULT=$(result_of "$meta") || fail "write" "cannot read back $meta"
  say "backup $bid: $size bytes, $(awk -F '\t' '$1 == "T" { t++; r += $2 } $1 == "L" { l = $2 } END { printf "%d tables, %d rows, %d large objects", t, r, l }' "$work/counts.$bid")"
}

cmd_backup() {
  case $id in before-restore-*) usage_error "--id $id: names starting with before-restore- are the restores' own" ;; esac
  mkdir -p "$pg" || fail repository "cannot create $pg"
  setup_work
  lock
  do_backup "$id"
  printf '%s\n' "$RESULT"
}

cmd_restore() {
  dump=$pg/$id.dump
  [ -f "$dump" ] || fail restore "no backup $id in $pg ($dump does not exist)"
  setup_work
  lock
  # The dump must at least have a readable table of contents before anything is done.
  if ! pg_restore -l "$dump" >/dev/null 2>"$work/toc.err"; then
    show "$work/toc.err"
    fail "read dump" "$(reason_in "$work/toc.err" "cannot read $dump")"
  fi
  # Refused while in use (RelStorage's sessions would hold locks the restore waits for), after
  # waiting a little for the sessions of a site just stopped to end.
  limit=${PG_BACKUP_IN_USE_WAIT:-30}
  case $limit in '' | *[!0-9]*) limit=30 ;; esac
  waited=0
  while :; do
    if ! others=$(psql -X -A -t -q --no-password -d "$RELSTORAGE_DSN" -c "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid() AND backend_type = 'client backend'" 2>"$work/conn.err"); then
      show "$work/conn.err"
      fail connect "$(reason_in "$work/conn.err" "cannot connect")"
    fi
    case $others in
    0) break ;;
    '' | *[!0-9]*) fail connect "unexpected answer from the database: $others" ;;
    esac
    if [ "$waited" -ge "$limit" ]; then
      fail restore "the database is in use ($others other sessions after ${limit}s): stop the site first; nothing changed"
    fi
    [ "$waited" = 0 ] && say "the database has $others other sessions: waiting up to ${limit}s for them to end"
    sleep 1
    waited=$((waited + 1))
  done
  # The database as it is now, kept whatever happens next.
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  before=before-restore-$stamp
  n=1
  while [ -e "$pg/$before.dump" ] || [ -e "$pg/$before.json" ]; do
    n=$((n + 1))
    before=before-restore-$stamp-$n
  done
  do_backup "$before"
  before_path=$pg/$before.dump
  dump=$pg/$id.dump
  meta=$pg/$id.json
  say "restore $id: the database as it was is in $before_path"
  say "restore $id: pg_restore in one transaction"
  rm -f "$work/restore.rc" "$work/complete" "$work/why" "$work/counts.restore"
  {
    { pg_restore --clean --if-exists --single-transaction --no-owner -f - "$dump" 2>"$work/restore.err"; echo $? >"$work/restore.rc"; } |
      awk -v mode=filter -v counts="$work/counts.restore" -v complete="$work/complete" "$AWK_PROG"
    # The checks and the COMMIT only when pg_restore wrote everything; else psql reaches the end
    # of its input inside the transaction, and the server rolls it back.
    if [ "$(cat "$work/restore.rc" 2>/dev/null)" = 0 ] && [ -f "$work/complete" ]; then
      if [ -f "$meta" ] && [ "$(content_of "$meta")" != "$(awk -v mode=json "$AWK_PROG" "$work/counts.restore")" ]; then
        echo "the dump's content differs from what the backup recorded in $meta (tables, rows or large objects)" >"$work/why"
      else
        awk -v mode=verify "$AWK_PROG" "$work/counts.restore"
        if [ "${PG_BACKUP_INJECT_FAILURE-}" = verify ]; then
          echo "DO \$t\$ BEGIN RAISE EXCEPTION 'pg_backup verify: injected failure'; END \$t\$;"
        fi
        echo "COMMIT;"
      fi
    fi
  } | psql -X -q --no-password -v ON_ERROR_STOP=1 -o /dev/null -d "$RELSTORAGE_DSN" 2>"$work/psql.err"
  psql_rc=$?
  restore_rc=$(cat "$work/restore.rc" 2>/dev/null)
  if [ "$psql_rc" != 0 ]; then
    show "$work/psql.err"
    why=$(reason_in "$work/psql.err" "psql failed")
    case $why in *"pg_backup verify:"*) step=verify ;; *) step=restore ;; esac
    fail "$step" "$why; rolled back, the database is as it was (also in $before_path)"
  fi
  if [ "$restore_rc" != 0 ]; then
    show "$work/restore.err"
    fail restore "$(reason_in "$work/restore.err" "pg_restore failed") ($dump); rolled back, the database is as it was (also in $before_path)"
  fi
  if [ -f "$work/why" ]; then
    fail verify "$(cat "$work/why"); rolled back, the database is as it was (also in $before_path)"
  fi
  if [ ! -f "$work/complete" ]; then
    fail restore "pg_restore's output of $dump ended early; rolled back, the database is as it was (also in $before_path)"
  fi
  # Warnings of the transaction (tables the backup does not have).
  if [ -s "$work/psql.err" ]; then
    while IFS= read -r l || [ -n "$l" ]; do
      case $l in *WARNING:*) redact "$PROG: ${l#*WARNING:  }" >&2 ;; esac
    done <"$work/psql.err"
  fi
  say "restore $id: done, the database has the backup's $(awk -F '\t' '$1 == "T" { t++; r += $2 } $1 == "L" { l = $2 } END { printf "%d tables, %d rows, %d large objects", t, r, l }' "$work/counts.restore")"
  printf '{"id": "%s", "before": %s}\n' "$id" "$(json_str "$before_path")"
}

cmd_prune() {
  kept=
  unknown=
  for k in $keeps; do
    if [ -f "$pg/$k.dump" ]; then
      case " $kept " in *" $k "*) ;; *) kept="$kept $k" ;; esac
    else
      case " $unknown " in *" $k "*) ;; *) unknown="$unknown $k" ;; esac
      say "--keep $k: no backup $k in $pg, ignored"
    fi
  done
  [ -n "$kept" ] || fail prune "none of the --keep backups ($(echo $keeps)) exists in $pg: nothing deleted"
  lock
  deleted=
  for f in "$pg"/*.dump "$pg"/*.json; do
    [ -f "$f" ] || continue
    b=${f##*/}
    stem=${b%.*}
    case $stem in before-restore-*) continue ;; esac
    case " $kept " in *" $stem "*) continue ;; esac
    rm -f "$f" || fail prune "cannot delete $f"
    case " $deleted " in *" $stem "*) ;; *) deleted="$deleted $stem" ;; esac
  done
  # Leftovers of runs that were killed (none runs now: we hold the lock).
  if [ -n "${LOCKED-}" ]; then
    for f in "$pg"/.*.partial "$pg"/.work.*; do
      [ -e "$f" ] && rm -rf "$f"
    done
  fi
  [ -n "$deleted" ] && say "deleted$deleted"
  printf '{"kept": %s, "unknown": %s, "deleted": %s}\n' "$(json_list $kept)" "$(json_list $unknown)" "$(json_list $deleted)"
}

json_list() {
  out=
  for x in "$@"; do out="$out${out:+, }\"$x\""; done
  printf '[%s]' "$out"
}

setup_work() {
  work=$(mktemp -d "$pg/.work.XXXXXX") || fail repository "cannot write in $pg"
  WORK=$work
}

cleanup() {
  [ -n "${PARTIAL1-}" ] && rm -f "$PARTIAL1" "$PARTIAL2"
  [ -n "${WORK-}" ] && rm -rf "$WORK"
}

# --- Arguments ----------------------------------------------------------------------------------

[ $# -gt 0 ] || usage_error "no command"
cmd=$1
shift
case $cmd in
backup | restore | prune) ;;
-h | --help) usage; exit 0 ;;
*) usage_error "unknown command: $cmd" ;;
esac
repo=
id=
keeps=
while [ $# -gt 0 ]; do
  case $1 in
  --repo | --id | --keep)
    [ $# -ge 2 ] || usage_error "$1 needs a value"
    opt=$1 val=$2
    shift 2
    ;;
  --repo=* | --id=* | --keep=*)
    opt=${1%%=*} val=${1#*=}
    shift
    ;;
  *) usage_error "unknown argument: $1" ;;
  esac
  case $opt in
  --repo)
    [ -z "$repo" ] || usage_error "--repo given twice"
    repo=$val
    ;;
  --id)
    [ -z "$id" ] || usage_error "--id given twice"
    valid_id "$val" || usage_error "--id $val: letters, digits, '.', '_' and '-' only, not starting with '.'"
    id=$val
    ;;
  --keep)
    valid_id "$val" || usage_error "--keep $val: letters, digits, '.', '_' and '-' only, not starting with '.'"
    keeps="$keeps $val"
    ;;
  esac
done
[ -n "$repo" ] || usage_error "--repo is required"
repo=${repo%/}
[ -n "$repo" ] || repo=/
pg=${repo%/}/pg
case $cmd in
backup | restore)
  [ -n "$id" ] || usage_error "$cmd needs --id"
  [ -z "$keeps" ] || usage_error "$cmd takes no --keep"
  [ -n "${RELSTORAGE_DSN-}" ] || usage_error "RELSTORAGE_DSN (the database's connection string) is not set"
  dsn_password "$RELSTORAGE_DSN"
  ;;
prune)
  [ -n "$keeps" ] || usage_error "prune needs at least one --keep"
  [ -z "$id" ] || usage_error "prune takes --keep, not --id"
  ;;
esac

WORK=
PARTIAL1=
PARTIAL2=
LOCKED=
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

case $cmd in
backup) cmd_backup ;;
restore) cmd_restore ;;
prune) cmd_prune ;;
esac
exit 0
