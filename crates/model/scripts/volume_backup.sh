#!/bin/sh
# Back up and restore the data volume of a site of a generic product: an application mutu knows
# nothing of but its volume, so its backup is a copy of the volume's files.
#
# mutu runs this in Jobs, in a small image with a POSIX shell, tar and gzip (a busybox binary
# alone will do: a tool missing on PATH runs as its applet), as root (owners and modes come back as they were), with the site's data volume at DATA
# and the member's backup volume at /backups:
#
#     sh volume_backup.sh backup  --data DATA --repo /backups/SITE --id ID
#     sh volume_backup.sh restore --data DATA --repo /backups/SITE --id ID
#     sh volume_backup.sh prune   --repo /backups/SITE --keep ID [--keep ID ...]
#
# The repository REPO holds, in REPO/volume/:
#     ID.tar.gz                the volume's files, numeric owners, modes and times (busybox's
#                              tar gives symlinks no owner back)
#     ID.json                  what the backup recorded: its time, size and number of entries
#     before-restore-STAMP.*   the volume as it was just before a restore (STAMP: UTC,
#                              YYYYMMDDTHHMMSSZ), a backup like the others (it can be restored with
#                              --id before-restore-STAMP); restore and prune never delete these
#
# backup (the application may keep running: each file is copied as it is when read, as a file
# copy would; an application that needs a consistent copy across files must be stopped first,
# which a restore or a migration does): the archive is written to REPO/volume/.ID.tar.gz.partial,
# read back in full (an archive that cannot be read fails the backup), then ID.json and ID.tar.gz
# are renamed into place: an interrupted run never leaves a half archive under the backup's name.
# Prints one JSON line:
#     {"id": ID, "time": RFC3339 UTC, "size": BYTES, "files": ENTRIES, "location": ARCHIVE PATH}
# `time` is when the copy started. Running backup again with an existing ID does nothing and
# prints the same line. IDs: letters, digits, `.`, `_`, `-`, not starting with `.`;
# `before-restore-*` is reserved.
#
# restore (the application stopped): the archive must read in full; the volume as it is is saved
# by a backup named before-restore-STAMP; then the volume is emptied and the archive extracted
# into it. When the extraction fails, the volume is emptied again and the before-restore archive
# extracted: the volume is as it was, and the run fails. Prints one JSON line:
#     {"id": ID, "before": PATH OF THE before-restore ARCHIVE}
#
# prune: deletes ID.tar.gz and ID.json of every backup not kept, never before-restore-* (and the
# leftovers of killed runs, `.*.partial`, `.*.failed` and `.*.list`). Refuses, deleting nothing, when none of the --keep
# backups exists; --keep names without a backup are ignored (and listed). Prints
#     {"kept": [IDS], "unknown": [IDS], "deleted": [IDS]}
#
# Exit status: 0 done; 1 failed, the last line on stderr being `volume_backup: FAILED: STEP:
# REASON` (STEP: archive, check archive, extract, put back, prune, repository, write); 2 bad
# arguments. Progress goes to stderr, stdout only has the JSON. Files are written with umask 077.

set -u
umask 077
PROG=volume_backup

# An image may have busybox and little else on PATH (no applet links): each
# tool missing there is run as a busybox applet.
if command -v busybox >/dev/null 2>&1; then
    for applet in tar gzip date wc tr mv rm mkdir cat sleep; do
        command -v "$applet" >/dev/null 2>&1 || eval "$applet() { busybox $applet \"\$@\"; }"
    done
fi

usage() {
    echo "$PROG: $1" >&2
    echo "usage: sh volume_backup.sh backup|restore --data DATA --repo REPO --id ID" >&2
    echo "       sh volume_backup.sh prune --repo REPO --keep ID [--keep ID ...]" >&2
    exit 2
}

fail() {
    echo "$PROG: FAILED: $1: $2" >&2
    exit 1
}

log() {
    echo "$PROG: $*" >&2
}

valid_id() {
    case $1 in
        '' | .* | *[!A-Za-z0-9._-]*) return 1 ;;
    esac
    return 0
}

# Removes every entry of directory $1 but lost+found (which a file system may need; an archive
# extracts over it).
empty_dir() {
    for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        [ "${f##*/}" = lost+found ] && continue
        rm -rf -- "$f" || return 1
    done
    return 0
}

# tar and gzip run as two processes (a tar that compresses by itself runs a
# `gzip` found on PATH, which an image may lack); a failure of either fails the
# whole, through a marker file beside the archive.

# Writes the tree of directory $1 to archive $2.
pack() {
    rm -f -- "$2.failed"
    { tar -cf - --numeric-owner -C "$1" . || : >"$2.failed"; } | gzip -c >"$2" || return 1
    [ ! -e "$2.failed" ] || { rm -f -- "$2.failed"; return 1; }
}

# Lists archive $1 (one entry per line), failing unless it reads in full.
list() {
    rm -f -- "$1.failed"
    { gzip -dc "$1" || : >"$1.failed"; } | tar -tf - || { rm -f -- "$1.failed"; return 1; }
    [ ! -e "$1.failed" ] || { rm -f -- "$1.failed"; return 1; }
}

# Extracts archive $1 into directory $2.
unpack() {
    rm -f -- "$1.failed"
    { gzip -dc "$1" || : >"$1.failed"; } | tar -xf - --numeric-owner -C "$2" ||
        { rm -f -- "$1.failed"; return 1; }
    [ ! -e "$1.failed" ] || { rm -f -- "$1.failed"; return 1; }
}

# Whether archive $1 reads in full.
readable() {
    list "$1" >/dev/null 2>&1
}

# Archives directory $1 (the whole tree, its root's owner and mode included) as backup $2 of
# repository directory $3: written to .$2.tar.gz.partial, read back in full, then $2.json and
# $2.tar.gz renamed into place. Prints the backup's JSON line.
archive() {
    a_data=$1 a_id=$2 a_vol=$3
    partial="$a_vol/.$a_id.tar.gz.partial"
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    rm -f -- "$partial"
    pack "$a_data" "$partial" || fail archive "cannot archive $a_data"
    list "$partial" >"$partial.list" ||
        { rm -f -- "$partial.list"; fail "check archive" "the archive just written cannot be read"; }
    files=$(wc -l <"$partial.list" | tr -d ' ')
    rm -f -- "$partial.list"
    size=$(wc -c <"$partial" | tr -d ' ')
    line="{\"id\": \"$a_id\", \"time\": \"$started\", \"size\": $size, \"files\": $files, \"location\": \"$a_vol/$a_id.tar.gz\"}"
    printf '%s\n' "$line" >"$a_vol/.$a_id.json.partial" || fail write "cannot write $a_vol/$a_id.json"
    mv -f -- "$a_vol/.$a_id.json.partial" "$a_vol/$a_id.json" || fail write "cannot write $a_vol/$a_id.json"
    mv -f -- "$partial" "$a_vol/$a_id.tar.gz" || fail write "cannot write $a_vol/$a_id.tar.gz"
    printf '%s\n' "$line"
}

cmd=${1:-}
[ -n "$cmd" ] || usage "no command"
shift
data='' repo='' id='' keep=''
while [ $# -gt 0 ]; do
    case $1 in
        --data) [ $# -ge 2 ] || usage "--data needs a value"; data=$2; shift 2 ;;
        --repo) [ $# -ge 2 ] || usage "--repo needs a value"; repo=$2; shift 2 ;;
        --id) [ $# -ge 2 ] || usage "--id needs a value"; id=$2; shift 2 ;;
        --keep)
            [ $# -ge 2 ] || usage "--keep needs a value"
            valid_id "$2" || usage "bad backup id to keep: '$2'"
            keep="$keep $2"
            shift 2
            ;;
        *) usage "unknown argument '$1'" ;;
    esac
done
[ -n "$repo" ] || usage "--repo is required"
vol="$repo/volume"

case $cmd in
    backup | restore)
        [ -n "$data" ] || usage "--data is required"
        [ -d "$data" ] || usage "--data $data is not a directory"
        valid_id "$id" || usage "bad backup id: '$id'"
        ;;
    prune)
        [ -n "$keep" ] || usage "prune needs at least one --keep"
        ;;
    *) usage "unknown command '$cmd'" ;;
esac

case $cmd in
    backup)
        case $id in before-restore-*) usage "backup ids before-restore-* are reserved" ;; esac
        mkdir -p -- "$vol" || fail repository "cannot create $vol"
        if [ -f "$vol/$id.tar.gz" ] && [ -f "$vol/$id.json" ]; then
            log "backup $id exists already"
            cat "$vol/$id.json"
            exit 0
        fi
        log "archiving $data into $vol/$id.tar.gz"
        archive "$data" "$id" "$vol"
        ;;
    restore)
        [ -f "$vol/$id.tar.gz" ] || fail "check archive" "no backup $id in $vol"
        readable "$vol/$id.tar.gz" || fail "check archive" "the archive of backup $id cannot be read"
        stamp=$(date -u +%Y%m%dT%H%M%SZ)
        while [ -e "$vol/before-restore-$stamp.tar.gz" ]; do
            sleep 1
            stamp=$(date -u +%Y%m%dT%H%M%SZ)
        done
        before="before-restore-$stamp"
        log "saving the volume as it is as $before"
        archive "$data" "$before" "$vol" >/dev/null
        log "restoring backup $id into $data"
        if empty_dir "$data" && unpack "$vol/$id.tar.gz" "$data"; then
            printf '{"id": "%s", "before": "%s"}\n' "$id" "$vol/$before.tar.gz"
            exit 0
        fi
        log "the extraction failed: putting the volume back as it was"
        if empty_dir "$data" && unpack "$vol/$before.tar.gz" "$data"; then
            fail extract "cannot extract backup $id into $data; the volume is as it was ($before)"
        fi
        fail "put back" "cannot extract backup $id, nor put back $before: restore $before by hand"
        ;;
    prune)
        [ -d "$vol" ] || fail prune "no repository at $vol"
        kept='' unknown='' found=0
        for k in $keep; do
            if [ -f "$vol/$k.tar.gz" ]; then
                kept="$kept $k" found=1
            else
                unknown="$unknown $k"
            fi
        done
        [ "$found" = 1 ] || fail prune "none of the backups to keep ($keep ) exists: nothing deleted"
        deleted=''
        for f in "$vol"/*.tar.gz; do
            [ -e "$f" ] || continue
            b=${f##*/}
            b=${b%.tar.gz}
            case $b in before-restore-*) continue ;; esac
            case " $keep " in *" $b "*) continue ;; esac
            rm -f -- "$vol/$b.tar.gz" "$vol/$b.json" || fail prune "cannot delete backup $b"
            deleted="$deleted $b"
        done
        rm -f -- "$vol"/.*.partial "$vol"/.*.failed "$vol"/.*.list
        json_list() {
            out='' sep=''
            for x in $1; do
                out="$out$sep\"$x\"" sep=', '
            done
            printf '[%s]' "$out"
        }
        printf '{"kept": %s, "unknown": %s, "deleted": %s}\n' \
            "$(json_list "$kept")" "$(json_list "$unknown")" "$(json_list "$deleted")"
        ;;
esac
