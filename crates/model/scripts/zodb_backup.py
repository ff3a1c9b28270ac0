"""Back up and restore a site's ZODB (a FileStorage and its blob directory), incrementally.

mutu runs this in Jobs, in the site's own release image (it needs Python and ZODB, nothing
else), with the site's data volume mounted at /data and the member's backup volume at /backups:

    python zodb_backup.py backup  --data /data --repo /backups/SITE --id ID [--gzip] [--full]
    python zodb_backup.py restore --data /data --repo /backups/SITE [--id ID | --at RFC3339]
    python zodb_backup.py list    --repo /backups/SITE
    python zodb_backup.py prune   --repo /backups/SITE --keep ID [--keep ID ...]
    python zodb_backup.py forget-before --data /data

The data: `DATA/filestorage/Data.fs` (FileStorage) and `DATA/blobstorage` (its blob directory).
The repository REPO holds:
    REPO/filestorage/       repozo's files: full backups (STAMP.fs, or .fsz with --gzip) and
                            incremental ones (STAMP.deltafs[z]), each with STAMP.index; each
                            full one has STAMP.dat listing its chain (STAMP: UTC,
                            YYYY-MM-DD-HH-MM-SS)
    REPO/blobs/STAMP/       one complete copy of the blob directory per backup, where the files
                            the previous copy already had (same path, size and mtime: ZODB never
                            rewrites a blob file) are hard links to it, like rsync --link-dest
    REPO/backups/ID.json    one manifest per backup: what restoring it needs
    REPO/.lock              backup, restore and prune of one repository run one at a time

backup (the site keeps running: FileStorage only appends, and repozo copies the prefix up to the
last complete transaction; the blob directory is copied after that, so it has every blob file
that prefix refers to): `repozo -B` makes a full backup the first time (or after a pack, or with
--full) and an incremental one after, holding only the transactions committed since; nothing
when nothing changed. Then the blob copy is written into REPO/blobs/.tmp-... and renamed, so an
interrupted run leaves no half copy (a copy identical to the previous one is not kept: the
manifest names the previous one). Then the manifest is written (atomically), and one JSON line is
printed on stdout:
    {"id": ID, "time": RFC3339, "size": BYTES, "total": BYTES, "location": MANIFEST PATH}
`time` is the backup's point in time (UTC, to the second): the time stamp of the repozo file it
wrote, or when it ran when nothing changed since the previous file; `size` the bytes this backup
added to the repository (the repozo file and its index, the blob files copied, not the links),
`total` the bytes restoring it reads. Backups of a repository get strictly increasing times (a
backup waits for the next second when needed). Running backup again with an existing ID does
nothing and prints the same line.

restore (the site stopped): to the backup ID, or the state at the time --at, or the latest one.
The state at a time between two backups is the later one without its transactions after that
time (FileStorage keeps every transaction, each with the time it was committed, until a pack:
the later backup is rebuilt, then its transactions up to that time, blobs included, are copied
into a new FileStorage with ZODB's own copy). Refused, changing nothing, when that history is
not in the repository: a time before every backup's transactions, after the last backup ran,
or across a pack (or a full backup) between the two backups. The backup is rebuilt beside the data, in DATA/.restore-STAMP: `repozo -R -w`
(which checks every file's size and md5 against the .dat) gives Data.fs, the blob copy is copied;
then it is opened with ZODB (FileStorage read-only with the blob directory): its size and last
transaction must be the ones the manifest recorded, its root must load, and every blob its
current records refer to must be there. Only then is the current data moved aside, to
DATA/before-restore-STAMP/{filestorage,blobstorage} (renames on the same filesystem), and the
restored data moved into place, then checked again. On any failure the restored copy is removed
and the current data is where it was (moved back when it had been moved aside): exit 1. The data
moved aside stays until `forget-before` removes it; restore never does. Refused while the
database is in use (Data.fs.lock is locked). When run as root, the restored files get the owner
of the data they replace. It prints one JSON line:
    {"id": ID, "time": RFC3339, "at": RFC3339 or null, "data": DATA, "before": DIR or null,
     "objects": N, "blobs": N}
("at": the --at time when the backup was cut at it.)

list: prints a JSON list, oldest first: [{"id", "time", "size", "total"}, ...].

prune: deletes every backup not kept: its manifest, then the repozo files no kept backup needs
(a kept backup needs its chain: the full backup it starts from and every incremental one up to
it; and the .index of its last file), then the blob copies no kept backup names. Never deletes
what a kept backup needs. A --keep naming no backup of the repository (one not written yet) keeps
nothing; when no --keep names one, prune refuses and deletes nothing. Prints
    {"kept": [IDS], "unknown": [IDS], "deleted": [IDS], "files": N, "freed": BYTES}

forget-before: deletes DATA/before-restore-* (once the restored site is known to be good); with
--older-than SECONDS, only those set aside longer ago than that (by the STAMP in their name).
Prints
    {"removed": [DIRS], "kept": [DIRS], "freed": BYTES}

Exit status: 0 done; 1 failed: the last line on stderr, `zodb_backup: FAILED: ...`, names the
step and the path, and the data and repository are as they were (but for leftovers an
interrupted backup cleans next time); 2 bad arguments. Progress goes to stderr; stdout only has
the JSON.

For tests only: ZODB_BACKUP_INJECT_FAILURE=after-swap makes restore fail once the restored data
is in place, to check that the original data is put back.
"""

import argparse
import contextlib
import datetime
import errno
import fcntl
import gzip
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import time
import traceback

PROG = "zodb_backup"
USAGE = """usage:
  zodb_backup.py backup  --data DATA --repo REPO --id ID [--gzip] [--full]
  zodb_backup.py restore --data DATA --repo REPO [--id ID | --at RFC3339]
  zodb_backup.py list    --repo REPO
  zodb_backup.py prune   --repo REPO --keep ID [--keep ID ...]
  zodb_backup.py forget-before --data DATA [--older-than SECONDS]"""

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
STAMP_FORMAT = "%Y-%m-%d-%H-%M-%S"  # repozo's file names
ASIDE_FORMAT = "%Y%m%dT%H%M%SZ"  # DATA/before-restore-STAMP
REPOZO_FILE = re.compile(r"^(\d{4}(?:-\d\d){5})\.(fs|fsz|deltafs|deltafsz)$")
RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")
LOCK_TIMEOUT = 600  # seconds to wait for another run on the same repository
CLOCK_SKEW = 5  # seconds a repository file may be in the future before we refuse
FORMAT = 1  # of the manifests
INJECT = "ZODB_BACKUP_INJECT_FAILURE"


class UsageError(Exception):
    """Bad arguments: exit status 2."""


class Failure(Exception):
    """A failure whose message says it all: exit status 1, no traceback."""


def log(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def emit(value):
    print(json.dumps(value), flush=True)


# --- times -------------------------------------------------------------------------------------


def utc_from_stamp(stamp):
    return datetime.datetime.strptime(stamp, STAMP_FORMAT).replace(
        tzinfo=datetime.timezone.utc)


def stamp_from_utc(when):
    return when.astimezone(datetime.timezone.utc).strftime(STAMP_FORMAT)


def rfc3339(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    m = RFC3339.match(text)
    if not m:
        raise UsageError(
            f"--at {text!r} is not an RFC 3339 time with its offset, "
            "e.g. 2026-05-09T07:35:25Z or 2026-05-09T09:35:25+02:00")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    zone = m.group(8)
    if zone in ("Z", "z"):
        tz = datetime.timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]),
                                                         minutes=int(zone[4:6])))
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as e:
        raise UsageError(f"--at {text!r}: {e}") from None


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


# --- files -------------------------------------------------------------------------------------


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomically(path, value):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path))


def remove_tree(path):
    """Deletes a tree; returns the bytes freed (files whose last link this removed)."""
    freed = 0
    if not os.path.lexists(path):
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        st = os.lstat(path)
        os.unlink(path)
        return st.st_size if st.st_nlink == 1 else 0
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(top, name)
            st = os.lstat(full)
            os.unlink(full)
            if st.st_nlink == 1:
                freed += st.st_size
        for name in dirs:
            full = os.path.join(top, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)
    return freed


def remove_file(path):
    """Deletes a file if there; returns the bytes freed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    os.unlink(path)
    return st.st_size if st.st_nlink == 1 else 0


def tree_bytes(path):
    total = files = 0
    for top, _dirs, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(top, name)).st_size
            files += 1
    return files, total


@contextlib.contextmanager
def repo_lock(repo, writes=True):
    """Holds REPO/.lock. writes=False (restore): a read-only repository needs none."""
    path = os.path.join(repo, ".lock")
    try:
        f = open(path, "a")
    except OSError as e:
        if not writes and e.errno == errno.EROFS:
            log(f"{repo} is read-only: restoring without its lock")
            yield
            return
        raise Failure(f"cannot open the repository's lock file {path}: {e}") from None
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        announced = False
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure(
                        f"another backup, restore or prune of {repo} has held {path} for "
                        f"{LOCK_TIMEOUT} s; giving up") from None
                if not announced:
                    log(f"waiting for another run on {repo} (lock {path})")
                    announced = True
                time.sleep(1)
        yield
    finally:
        f.close()


def check_not_in_use(data_fs):
    """Refuses when a process holds the FileStorage's lock (a running ZEO server or Zope)."""
    lock = data_fs + ".lock"
    if not os.path.exists(lock):
        return
    try:
        f = open(lock, "rb")
    except OSError as e:
        raise Failure(f"cannot open {lock} to check that the database is not in use: {e}")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Failure(
                f"the database is in use: {lock} is locked by another process (stop the "
                "site's ZEO server and instances before restoring); nothing was changed"
            ) from None
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


# --- repozo ------------------------------------------------------------------------------------


def repozo_files(fsdir):
    """repozo's data files in fsdir, oldest first."""
    try:
        names = os.listdir(fsdir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if REPOZO_FILE.match(n))


def is_full(name):
    return REPOZO_FILE.match(name).group(2) in ("fs", "fsz")


def stamp_of(name):
    return REPOZO_FILE.match(name).group(1)


def chain_to(files, endpoint_stamp):
    """The files repozo reads to recover the state at endpoint_stamp (its find_files): the last
    full backup at or before it and every incremental one after that, up to it; oldest first."""
    needed = []
    for name in reversed(files):
        if stamp_of(name) <= endpoint_stamp:
            needed.append(name)
            if is_full(name):
                break
    needed.reverse()
    if needed and not is_full(needed[0]):
        return []  # no full backup: unusable
    return needed


def run_repozo(step, args):
    cmd = [sys.executable, "-m", "ZODB.scripts.repozo", "-v"] + args
    log(f"{step}: {' '.join(cmd)}")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = done.stderr.decode("utf-8", "replace")
    for line in err.splitlines():
        print(f"  repozo: {line}", file=sys.stderr, flush=True)
    if done.returncode != 0:
        lines = [l for l in err.splitlines() if l.strip()]
        raise Failure(f"{step}: repozo exited with {done.returncode}: "
                      f"{lines[-1] if lines else 'no message'}")
    return done.stdout


def dat_line(fsdir, chain, name):
    """(start, end, md5) of `name` in the .dat file of the chain's full backup."""
    dat = os.path.join(fsdir, os.path.splitext(chain[0])[0] + ".dat")
    try:
        with open(dat) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise Failure(f"cannot read repozo's chain file {dat}: {e}") from None
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and os.path.basename(parts[0]) == name:
            return int(parts[1]), int(parts[2]), parts[3]
    raise Failure(f"repozo's chain file {dat} has no line for {name}")


def last_tid(path, end_in_file):
    """The id of the last transaction in a repozo file (the transaction ending at byte
    end_in_file of it): FileStorage ends every transaction with its length, 8 bytes."""
    opener = gzip.open if path.endswith("z") else open
    with opener(path, "rb") as f:
        if end_in_file < 8 + 8:
            return None
        f.seek(end_in_file - 8)
        tlen = struct.unpack(">Q", f.read(8))[0]
        start = end_in_file - 8 - tlen
        if start < 0:
            raise Failure(f"{path}: the last transaction's length {tlen} does not fit in the "
                          "file: not a FileStorage backup?")
        f.seek(start)
        header = f.read(16)
        if len(header) != 16 or struct.unpack(">Q", header[8:16])[0] != tlen:
            raise Failure(f"{path}: the last transaction's header does not match its length")
        return header[:8].hex()


# --- blobs -------------------------------------------------------------------------------------


def blob_snapshots(blobs_root):
    try:
        names = os.listdir(blobs_root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith(".")
                  and os.path.isdir(os.path.join(blobs_root, n)))


def same_file(a, b):
    """Whether b (in the previous copy) can stand for a: ZODB writes a blob file once, under a
    name made of its object and transaction ids, so same path, size and mtime (to the second:
    the backup volume may keep less) mean same content."""
    return (stat.S_ISREG(a.st_mode) and stat.S_ISREG(b.st_mode) and a.st_size == b.st_size
            and int(a.st_mtime) == int(b.st_mtime))


def snapshot_blobs(source, previous, target):
    """Copies the blob directory `source` to `target` (new), hard-linking the files `previous`
    (a former copy, or None) already has. Skips `tmp` (uploads in progress). Returns stats."""
    stats = {"files": 0, "bytes": 0, "copied_files": 0, "copied_bytes": 0, "linked_files": 0,
             "vanished_files": 0}
    link_ok = True
    os.mkdir(target)
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode))  # ZODB wants 0700 for blob dirs
    for top, dirs, files in os.walk(source):
        rel = os.path.relpath(top, source)
        if rel == ".":
            rel = ""
            if "tmp" in dirs:
                dirs.remove("tmp")
        dirs.sort()
        for name in dirs:
            src = os.path.join(top, name)
            dst = os.path.join(target, rel, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            else:
                os.mkdir(dst)
                os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode))
        for name in sorted(files):
            src = os.path.join(top, name)
            dst = os.path.join(target, rel, name)
            try:
                st = os.lstat(src)
            except FileNotFoundError:
                stats["vanished_files"] += 1  # e.g. an aborted transaction's file
                continue
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
                continue
            linked = False
            if previous is not None and link_ok:
                old = os.path.join(previous, rel, name)
                try:
                    old_st = os.lstat(old)
                except FileNotFoundError:
                    old_st = None
                if old_st is not None and same_file(st, old_st):
                    try:
                        os.link(old, dst)
                        linked = True
                    except OSError as e:
                        if e.errno == errno.EMLINK:
                            pass  # too many links to that inode: a copy starts a new one
                        elif e.errno in (errno.EPERM, errno.EXDEV, errno.ENOTSUP,
                                         errno.EOPNOTSUPP):
                            link_ok = False
                            log(f"hard links not possible in {target} ({e}): copying "
                                "every blob file")
                        else:
                            raise
            if linked:
                stats["linked_files"] += 1
            else:
                try:
                    shutil.copy2(src, dst)
                except FileNotFoundError:
                    if os.path.exists(src):
                        raise
                    stats["vanished_files"] += 1
                    continue
                stats["copied_files"] += 1
                stats["copied_bytes"] += st.st_size
            stats["files"] += 1
            stats["bytes"] += st.st_size
    return stats


# --- manifests ---------------------------------------------------------------------------------


def manifest_path(repo, backup_id):
    return os.path.join(repo, "backups", backup_id + ".json")


def load_manifests(repo, strict=True):
    """{id: manifest} of the repository's backups. strict: an unreadable one is a failure;
    otherwise it is given as None."""
    folder = os.path.join(repo, "backups")
    found = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return found
    for name in sorted(names):
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                m = json.load(f)
            if m.get("id") != name[:-len(".json")]:
                raise ValueError(f"its id is {m.get('id')!r}")
            utc_from_stamp(m["filestorage"]["date"])
            m["_time"] = parse_rfc3339(m["time"])
        except (OSError, ValueError, KeyError, TypeError, UsageError) as e:
            if strict:
                raise Failure(f"unreadable backup manifest {path}: {e}") from None
            found[name[:-len(".json")]] = None
            continue
        found[m["id"]] = m
    return found


def summary(repo, m):
    return {"id": m["id"], "time": m["time"], "size": m["size"], "total": m["total"],
            "location": manifest_path(repo, m["id"])}


# --- backup ------------------------------------------------------------------------------------


def backup(args):
    data, repo = os.path.abspath(args.data), os.path.abspath(args.repo)
    data_fs = os.path.join(data, "filestorage", "Data.fs")
    blob_dir = os.path.join(data, "blobstorage")
    fsdir = os.path.join(repo, "filestorage")
    blobs_root = os.path.join(repo, "blobs")

    step = f"creating the repository {repo}"
    try:
        for d in (repo, fsdir, blobs_root, os.path.join(repo, "backups")):
            os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise Failure(f"{step}: {e}") from None

    with repo_lock(repo):
        existing = load_manifests(repo)
        if args.id in existing:
            log(f"backup {args.id!r} exists already ({existing[args.id]['time']}): "
                "nothing to do")
            emit(summary(repo, existing[args.id]))
            return 0
        if not os.path.isfile(data_fs):
            raise Failure(f"no FileStorage at {data_fs}")
        if not os.path.isdir(blob_dir):
            raise Failure(f"no blob directory at {blob_dir}")

        for name in os.listdir(blobs_root):  # left by an interrupted backup
            if name.startswith(".tmp-"):
                log(f"removing {os.path.join(blobs_root, name)}, left by an interrupted backup")
                remove_tree(os.path.join(blobs_root, name))

        # A backup's time is after every earlier one's, and repozo cannot write two files in
        # one second: wait for the next second when needed.
        latest = [utc_from_stamp(stamp_of(n)) for n in repozo_files(fsdir)]
        latest += [m["_time"] for m in existing.values()]
        latest += [utc_from_stamp(n) for n in blob_snapshots(blobs_root)
                   if re.match(r"^\d{4}(-\d\d){5}$", n)]
        if latest:
            newest = max(latest)
            ahead = (newest - now_utc()).total_seconds()
            if ahead > CLOCK_SKEW:
                raise Failure(f"the repository {repo} has a backup from {rfc3339(newest)}, "
                              f"{ahead:.0f} s in the future: is this machine's clock right?")
            while now_utc() <= newest:
                time.sleep(0.05)
        started = now_utc()
        before = set(repozo_files(fsdir))

        step = f"repozo backup of {data_fs} into {fsdir}"
        args_repozo = ["-B", "-r", fsdir, "-f", data_fs]
        if args.gzip:
            args_repozo.append("-z")
        if args.full:
            args_repozo.append("-F")
        run_repozo(step, args_repozo)
        files = repozo_files(fsdir)
        new = sorted(set(files) - before)
        if len(new) > 1:
            raise Failure(f"{step}: repozo wrote {len(new)} files ({', '.join(new)}), expected "
                          "one at most")
        if not files:
            raise Failure(f"{step}: repozo wrote no file and the repository has none")
        endpoint = new[0] if new else files[-1]
        chain = chain_to(files, stamp_of(endpoint))
        if not chain or chain[-1] != endpoint:
            raise Failure(f"{step}: no full backup before {endpoint} in {fsdir}")
        when = utc_from_stamp(stamp_of(new[0])) if new else started
        if new:
            log(f"repozo wrote {'a full' if is_full(new[0]) else 'an incremental'} backup: "
                f"{new[0]}")
        else:
            log(f"no transaction since {endpoint}: no new repozo file")
        start, end, _md5 = dat_line(fsdir, chain, endpoint)
        tid = last_tid(os.path.join(fsdir, endpoint), end - start)
        index = os.path.splitext(endpoint)[0] + ".index"
        if not os.path.exists(os.path.join(fsdir, index)):
            index = None

        # The blobs, after the FileStorage: every blob file the copied transactions refer to
        # was in place before they were committed.
        stamp = stamp_from_utc(when)
        snapshots = blob_snapshots(blobs_root)
        previous = os.path.join(blobs_root, snapshots[-1]) if snapshots else None
        tmp = os.path.join(blobs_root, f".tmp-{stamp}-{os.getpid()}")
        step = f"copying the blobs of {blob_dir} to {tmp}"
        log(step + (f" (hard links to {previous} for unchanged files)" if previous else ""))
        try:
            stats = snapshot_blobs(blob_dir, previous, tmp)
            reused = False
            if previous is not None and stats["copied_files"] == 0:
                prev_files, _ = tree_bytes(previous)
                reused = prev_files == stats["files"]
            if reused:
                remove_tree(tmp)
                snapshot = os.path.basename(previous)
                log(f"the blobs did not change: this backup uses {previous}")
            else:
                snapshot = stamp
                final = os.path.join(blobs_root, snapshot)
                step = f"renaming {tmp} to {final}"
                if os.path.exists(final):
                    raise Failure(f"{step}: {final} exists already")
                os.rename(tmp, final)
                fsync_dir(blobs_root)
        except Failure:
            remove_tree(tmp)
            raise
        except OSError as e:
            remove_tree(tmp)
            raise Failure(f"{step}: {e}") from None
        log(f"blobs: {stats['files']} files, {stats['copied_files']} copied "
            f"({stats['copied_bytes']} bytes), {stats['linked_files']} hard links"
            + (f", {stats['vanished_files']} gone while copying (aborted or packed away)"
               if stats["vanished_files"] else ""))

        def size(name):
            return os.path.getsize(os.path.join(fsdir, name))

        added = stats["copied_bytes"] if not reused else 0
        if new:
            added += size(new[0])
            if os.path.exists(os.path.join(fsdir, os.path.splitext(new[0])[0] + ".index")):
                added += size(os.path.splitext(new[0])[0] + ".index")
        total = sum(size(n) for n in chain) + (size(index) if index else 0) + stats["bytes"]
        manifest = {
            "format": FORMAT,
            "id": args.id,
            "time": rfc3339(when),
            "size": added,
            "total": total,
            "filestorage": {
                "files": chain,
                "index": index,
                "date": stamp_of(endpoint),
                "new": new[0] if new else None,
                "full": bool(new) and is_full(new[0]),
                "size": end,
                "last_tid": tid,
            },
            "blobs": {
                "snapshot": snapshot,
                "reused": reused,
                "files": stats["files"],
                "bytes": stats["bytes"],
                "copied_files": 0 if reused else stats["copied_files"],
                "copied_bytes": 0 if reused else stats["copied_bytes"],
                "linked_files": stats["linked_files"],
            },
            "source": data,
        }
        path = manifest_path(repo, args.id)
        step = f"writing the manifest {path}"
        try:
            write_json_atomically(path, manifest)
        except OSError as e:
            raise Failure(f"{step}: {e}") from None
        log(f"backup {args.id!r} done: {rfc3339(when)}, {added} bytes added, {total} in all")
        emit(summary(repo, manifest))
    return 0


# --- restore -----------------------------------------------------------------------------------


def choose(manifests, args, repo):
    if not manifests:
        raise Failure(f"no backup in {repo}")
    if args.id is not None:
        if args.id not in manifests:
            raise Failure(f"no backup {args.id!r} in {repo} (there are: "
                          f"{', '.join(sorted(manifests, key=lambda i: manifests[i]['_time']))})")
        return manifests[args.id]
    ordered = sorted(manifests.values(), key=lambda m: m["_time"])
    return ordered[-1]


def tid_at(at):
    """The transaction id of time `at` (an aware datetime): every transaction committed at or
    before `at` has an id at most this one."""
    from persistent.TimeStamp import TimeStamp

    u = at.astimezone(datetime.timezone.utc)
    return TimeStamp(u.year, u.month, u.day, u.hour, u.minute,
                     u.second + u.microsecond / 1e6).raw()


def choose_at(manifests, text, repo):
    """The backup to restore for the state at time `text`, and the transaction id to cut its
    database at (None: restore it as it is).

    By transaction ids, not by the backups' times (those are to the second): the backup `prev`
    is the last whose last transaction is at or before the time, `next` the first with one
    after it. The state at the time is `next` without its transactions after the time, as long
    as `next` only appended to `prev` (same repozo chain; a pack, or a full backup, between them
    leaves the history between them out of the repository: refused). A time after every
    backup's last transaction is the last backup's state if that backup ran after the time;
    later than that, nothing in the repository says what happened: refused."""
    at = parse_rfc3339(text)
    stop = tid_at(at)
    ordered = sorted(manifests.values(), key=lambda m: m["_time"])

    def last_tid(m):
        return bytes.fromhex(m["filestorage"]["last_tid"] or "00" * 8)

    before = [m for m in ordered if last_tid(m) <= stop]
    after = [m for m in ordered if last_tid(m) > stop]
    if not after:
        last = ordered[-1]
        if at <= last["_time"]:
            return last, None
        raise Failure(f"{text} is after the last backup {last['id']!r} ({last['time']}): the "
                      f"repository does not hold what was written since; restore "
                      f"--id {last['id']} for the state of {last['time']}")
    nxt = after[0]
    if not before:
        raise Failure(f"no backup holds the state at {text}: the first one, {nxt['id']!r} "
                      f"({nxt['time']}), has transactions after it and none is older")
    prev = before[-1]
    chain, prev_chain = nxt["filestorage"]["files"], prev["filestorage"]["files"]
    if chain[:len(prev_chain)] != prev_chain:
        raise Failure(f"the database was packed (or backed up in full) between backups "
                      f"{prev['id']!r} ({prev['time']}) and {nxt['id']!r} ({nxt['time']}): "
                      f"the history between them, {text} included, is not in the repository; "
                      f"restore one of them with --id")
    return nxt, stop


def cut_at(staging, stop):
    """Keeps, of the database rebuilt in `staging` (filestorage/Data.fs and blobstorage), only
    the transactions up to id `stop`, blobs included (a new FileStorage written from the old
    one's records, ZODB's own copy; then put in its place). Returns (size, last tid in hex)."""
    from ZODB.blob import copyTransactionsFromTo
    from ZODB.FileStorage import FileStorage

    old_fs = os.path.join(staging, "filestorage", "Data.fs")
    old_blobs = os.path.join(staging, "blobstorage")
    cut = os.path.join(staging, "cut")
    os.makedirs(os.path.join(cut, "filestorage"))
    new_fs = os.path.join(cut, "filestorage", "Data.fs")
    new_blobs = os.path.join(cut, "blobstorage")
    source = FileStorage(old_fs, read_only=True, blob_dir=old_blobs)
    try:
        class Until:
            """The source, its history ending at `stop`."""

            def iterator(self):
                return source.iterator(stop=stop)

            def loadBlob(self, oid, serial):
                return source.loadBlob(oid, serial)

        dest = FileStorage(new_fs, create=True, blob_dir=new_blobs)
        try:
            copyTransactionsFromTo(Until(), dest)
            size, last = dest.getSize(), dest.lastTransaction()
        finally:
            dest.close()
    finally:
        source.close()
    if last == b"\0" * 8:
        raise Failure("the backup has no transaction at or before that time")
    remove_tree(os.path.join(staging, "filestorage"))
    remove_tree(old_blobs)
    os.rename(os.path.join(cut, "filestorage"), os.path.join(staging, "filestorage"))
    os.rename(new_blobs, old_blobs)
    os.rmdir(cut)
    return size, last.hex()


def verify(data_fs, blob_dir, expected_size, expected_tid, full=True):
    """Opens the FileStorage read-only with its blobs and checks that it is the backed-up
    state: its size and last transaction. full: also that its root loads and that the blob file
    of every current record that is a blob is there. Returns (objects, blobs) when full."""
    from ZODB.blob import is_blob_record
    from ZODB.DB import DB
    from ZODB.FileStorage import FileStorage
    from ZODB.POSException import POSKeyError
    from ZODB.utils import load_current, z64

    fs = FileStorage(data_fs, read_only=True, blob_dir=blob_dir)
    try:
        if fs.getSize() != expected_size:
            raise Failure(f"{data_fs} holds {fs.getSize()} bytes of transactions, the backup "
                          f"{expected_size}")
        last = fs.lastTransaction()
        want = bytes.fromhex(expected_tid) if expected_tid else z64
        if last != want:
            raise Failure(f"{data_fs}: its last transaction is {last.hex()}, the backup's "
                          f"{want.hex()}")
        if not full:
            return None
        if expected_tid:
            db = DB(fs)  # loads the root (DB would create it: it cannot, read-only)
            try:
                conn = db.open()
                try:
                    len(conn.root())
                finally:
                    conn.close()
            finally:
                db.close()  # closes fs too
            fs = FileStorage(data_fs, read_only=True, blob_dir=blob_dir)
        objects = blobs = 0
        missing = []
        index = fs._index  # oid -> position of its current record
        oid = index.minKey() if len(index) else None
        while oid is not None:
            objects += 1
            try:
                record, tid = load_current(fs, oid)
            except POSKeyError:
                record = None  # its creation was undone: no data
            if record is not None and is_blob_record(record):
                blobs += 1
                try:
                    fs.loadBlob(oid, tid)
                except POSKeyError:
                    missing.append(f"{fs.fshelper.getBlobFilename(oid, tid)} "
                                   f"(object 0x{oid.hex().lstrip('0') or '0'})")
            try:
                oid = index.minKey(struct.pack(">Q", struct.unpack(">Q", oid)[0] + 1))
            except ValueError:
                oid = None
        if missing:
            raise Failure(f"{len(missing)} blob file(s) missing from {blob_dir}: "
                          + ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else ""))
        return objects, blobs
    finally:
        fs.close()


def owner_of(data):
    for path in (os.path.join(data, "filestorage"), data):
        if os.path.exists(path):
            st = os.stat(path)
            return st.st_uid, st.st_gid
    return None


def chown_tree(path, uid, gid):
    os.lchown(path, uid, gid)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(top, name), uid, gid)


def unique_dir(base):
    path, n = base, 1
    while os.path.lexists(path):
        n += 1
        path = f"{base}-{n}"
    return path


def restore(args):
    data, repo = os.path.abspath(args.data), os.path.abspath(args.repo)
    fsdir = os.path.join(repo, "filestorage")
    if not os.path.isdir(data):
        raise Failure(f"no data directory {data}")
    if not os.path.isdir(repo):
        raise Failure(f"no backup repository at {repo}")
    with repo_lock(repo, writes=False):
        manifests = load_manifests(repo)
        if args.at is not None and manifests:
            m, stop = choose_at(manifests, args.at, repo)
        else:
            m, stop = choose(manifests, args, repo), None
        fsm = m["filestorage"]
        # What the restored database must be: the backup's, or its cut at --at.
        expected_size, expected_tid = fsm["size"], fsm["last_tid"]
        if stop is None:
            log(f"restoring backup {m['id']!r} ({m['time']}) into {data}")
        else:
            log(f"restoring the state at {args.at}: backup {m['id']!r} ({m['time']}) without "
                f"its transactions after that time, into {data}")
        for name in fsm["files"]:
            if not os.path.isfile(os.path.join(fsdir, name)):
                raise Failure(f"backup {m['id']!r} needs {os.path.join(fsdir, name)}, which is "
                              "missing; nothing was changed")
        snapshot = os.path.join(repo, "blobs", m["blobs"]["snapshot"])
        if not os.path.isdir(snapshot):
            raise Failure(f"backup {m['id']!r} needs the blob copy {snapshot}, which is "
                          "missing; nothing was changed")
        picked = chain_to(repozo_files(fsdir), fsm["date"])
        if picked != fsm["files"]:
            raise Failure(f"repozo would read {picked} from {fsdir} to recover "
                          f"{fsm['date']}, but backup {m['id']!r} is {fsm['files']}: the "
                          "repository's files changed; nothing was changed")
        live_fs = os.path.join(data, "filestorage", "Data.fs")
        check_not_in_use(live_fs)

        for name in os.listdir(data):  # left by an interrupted restore
            if name.startswith(".restore-"):
                log(f"removing {os.path.join(data, name)}, left by an interrupted restore")
                remove_tree(os.path.join(data, name))
        stamp = now_utc().strftime(ASIDE_FORMAT)
        staging = os.path.join(data, f".restore-{stamp}-{os.getpid()}")
        staged_fs = os.path.join(staging, "filestorage", "Data.fs")
        staged_blobs = os.path.join(staging, "blobstorage")
        unchanged = f"the data in {data} was not changed"

        step = f"creating {staging}"
        try:
            os.makedirs(os.path.join(staging, "filestorage"))
            step = f"repozo recovery of {fsm['date']} from {fsdir} into {staged_fs}"
            run_repozo(step, ["-R", "-w", "-r", fsdir, "-D", fsm["date"], "-o", staged_fs])
            step = f"copying the blobs of {snapshot} to {staged_blobs}"
            shutil.copytree(snapshot, staged_blobs, symlinks=True)
            step = f"verifying the restored database {staged_fs} with {staged_blobs}"
            objects, blobs = verify(staged_fs, staged_blobs, fsm["size"], fsm["last_tid"])
            log(f"restored database: {objects} objects, {blobs} blobs, last transaction "
                f"{fsm['last_tid']}: good")
            if stop is not None:
                step = f"cutting the restored database at {args.at}"
                expected_size, expected_tid = cut_at(staging, stop)
                step = f"verifying the database cut at {args.at}"
                objects, blobs = verify(staged_fs, staged_blobs, expected_size, expected_tid)
                log(f"database at {args.at}: {objects} objects, {blobs} blobs, last "
                    f"transaction {expected_tid}: good")
            if os.geteuid() == 0:
                owner = owner_of(data)
                if owner is not None and owner != (0, 0):
                    step = f"giving {staging} to uid {owner[0]}, gid {owner[1]}"
                    chown_tree(staging, *owner)
            step = "syncing the restored files to disk"
            os.sync()
        except Failure as e:
            remove_tree(staging)
            text = str(e)
            raise Failure(f"{text if text.startswith(step) else step + ': ' + text}; "
                          f"{unchanged}") from None
        except Exception as e:  # noqa: BLE001 - e.g. a corrupted FileStorage
            traceback.print_exc()
            remove_tree(staging)
            raise Failure(f"{step}: {type(e).__name__}: {e}; {unchanged}") from None

        # The swap: the current data aside, the restored data in its place.
        current = [n for n in ("filestorage", "blobstorage")
                   if os.path.lexists(os.path.join(data, n))]
        aside = unique_dir(os.path.join(data, f"before-restore-{stamp}")) if current else None
        moves = []
        step = f"moving the current data to {aside}" if aside else "moving the data in place"
        try:
            if aside:
                os.mkdir(aside)
                for name in current:
                    os.rename(os.path.join(data, name), os.path.join(aside, name))
                    moves.append((os.path.join(data, name), os.path.join(aside, name)))
            step = f"moving the restored data from {staging} into {data}"
            for name in ("filestorage", "blobstorage"):
                os.rename(os.path.join(staging, name), os.path.join(data, name))
                moves.append((os.path.join(staging, name), os.path.join(data, name)))
            fsync_dir(data)
            step = f"checking the restored database in place, {live_fs}"
            if os.environ.get(INJECT) == "after-swap":
                raise Failure(f"failure injected by {INJECT}=after-swap")
            verify(live_fs, os.path.join(data, "blobstorage"), expected_size, expected_tid,
                   full=False)
        except Exception as e:  # noqa: BLE001 - undo whatever failed
            if not isinstance(e, Failure):
                traceback.print_exc()
            reason = str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}"
            try:
                for src, dst in reversed(moves):
                    os.rename(dst, src)
                if aside:
                    os.rmdir(aside)
                remove_tree(staging)
                fsync_dir(data)
            except OSError as undo:
                raise Failure(
                    f"{step}: {reason}; then putting the original data back failed too "
                    f"({undo}): the original data is in {aside or data}, the restored data in "
                    f"{staging} or {data}: put it back by hand") from None
            raise Failure(f"{step}: {reason}; the original data was put back in {data}") \
                from None
        os.rmdir(staging)

    if aside:
        log(f"the data that was in place is kept in {aside}: remove it with "
            f"`zodb_backup.py forget-before --data {data}` once the site is good")
    log(f"restored backup {m['id']!r} ({m['time']})"
        + (f" as of {args.at}" if stop is not None else "") + f" into {data}")
    emit({"id": m["id"], "time": m["time"], "at": args.at if stop is not None else None,
          "data": data, "before": aside, "objects": objects, "blobs": blobs})
    return 0


# --- list, prune, forget-before ----------------------------------------------------------------


def list_backups(args):
    repo = os.path.abspath(args.repo)
    if not os.path.isdir(repo):
        raise Failure(f"no backup repository at {repo}")
    manifests = sorted(load_manifests(repo).values(), key=lambda m: m["_time"])
    emit([{"id": m["id"], "time": m["time"], "size": m["size"], "total": m["total"]}
          for m in manifests])
    return 0


def prune(args):
    repo = os.path.abspath(args.repo)
    fsdir = os.path.join(repo, "filestorage")
    blobs_root = os.path.join(repo, "blobs")
    if not os.path.isdir(repo):
        raise Failure(f"no backup repository at {repo}")
    keep = list(dict.fromkeys(args.keep))
    with repo_lock(repo):
        manifests = load_manifests(repo, strict=False)
        unknown = [k for k in keep if k not in manifests]
        keep = [k for k in keep if k in manifests]
        if not keep:
            raise Failure(f"none of the backups to keep ({', '.join(map(repr, unknown))}) is in "
                          f"{repo}: that would delete every backup; nothing was deleted")
        if unknown:
            # Not written (yet): nothing of theirs is in the repository (a backup writes its
            # manifest last, and holds the lock until then).
            log(f"no backup {', '.join(map(repr, unknown))} in {repo}: nothing of it to keep")
        unreadable = [k for k in keep if manifests[k] is None]
        if unreadable:
            raise Failure(f"the manifest of the kept backup(s) {', '.join(unreadable)} cannot "
                          "be read, so what they need is unknown; nothing was deleted")
        needed, needed_index, needed_dat, needed_blobs = set(), set(), set(), set()
        for k in keep:
            m = manifests[k]
            files = m["filestorage"]["files"]
            needed.update(files)
            needed_dat.add(os.path.splitext(files[0])[0] + ".dat")
            if m["filestorage"].get("index"):
                needed_index.add(m["filestorage"]["index"])
            needed_blobs.add(m["blobs"]["snapshot"])
        deleted = sorted(k for k in manifests if k not in keep)
        freed = count = 0
        step = "deleting manifests"
        try:
            # Manifests first: no manifest ever names a deleted file.
            for k in deleted:
                freed += remove_file(manifest_path(repo, k))
                count += 1
            fsync_dir(os.path.join(repo, "backups"))
            step = f"deleting repozo files in {fsdir}"
            names = sorted(os.listdir(fsdir)) if os.path.isdir(fsdir) else []
            for name in names:
                stem, ext = os.path.splitext(name)
                ours = re.match(r"^\d{4}(-\d\d){5}$", stem) is not None
                if REPOZO_FILE.match(name):
                    drop = name not in needed
                elif ours and ext == ".index":
                    drop = name not in needed_index
                elif ours and ext == ".dat":
                    drop = name not in needed_dat
                else:
                    drop = name == "tmp.tmp"  # left by an interrupted repozo
                if drop:
                    log(f"deleting {os.path.join(fsdir, name)}")
                    freed += remove_file(os.path.join(fsdir, name))
                    count += 1
            step = f"updating repozo's chain files in {fsdir}"
            left = set(repozo_files(fsdir))
            for dat in sorted(needed_dat):
                path = os.path.join(fsdir, dat)
                if not os.path.exists(path):
                    continue
                with open(path) as f:
                    lines = f.read().splitlines()
                kept_lines = [l for l in lines
                              if l.split() and os.path.basename(l.split()[0]) in left]
                if kept_lines != lines:
                    tmp = path + ".tmp"
                    with open(tmp, "w") as f:
                        f.write("".join(l + "\n" for l in kept_lines))
                        f.flush()
                        os.fsync(f.fileno())
                    os.rename(tmp, path)
            fsync_dir(fsdir)
            step = f"deleting blob copies in {blobs_root}"
            for name in sorted(os.listdir(blobs_root)) if os.path.isdir(blobs_root) else []:
                path = os.path.join(blobs_root, name)
                if name in needed_blobs or not os.path.isdir(path):
                    continue
                if name.startswith(".") and not name.startswith(".tmp-"):
                    continue
                log(f"deleting {path}")
                freed += remove_tree(path)
                count += 1
        except OSError as e:
            raise Failure(f"{step}: {e} (what the kept backups need was not touched)") \
                from None
    log(f"kept {len(keep)} backup(s), deleted {len(deleted)}: {count} files or directories, "
        f"{freed} bytes freed")
    emit({"kept": keep, "unknown": unknown, "deleted": deleted, "files": count,
          "freed": freed})
    return 0


def set_aside_at(name, path):
    """When the data in DATA/before-restore-STAMP was set aside: its STAMP, else (a name that
    does not parse) the directory's mtime."""
    stamp = name[len("before-restore-"):]
    for text in (stamp, stamp.rsplit("-", 1)[0]):  # STAMP, or STAMP-N (the same second)
        try:
            return datetime.datetime.strptime(text, ASIDE_FORMAT).replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            pass
    return datetime.datetime.fromtimestamp(os.stat(path).st_mtime, datetime.timezone.utc)


def forget_before(args):
    data = os.path.abspath(args.data)
    if not os.path.isdir(data):
        raise Failure(f"no data directory {data}")
    if args.older_than is not None and args.older_than < 0:
        raise UsageError("--older-than must be 0 or more seconds")
    now = datetime.datetime.now(datetime.timezone.utc)
    removed, kept, freed = [], [], 0
    for name in sorted(os.listdir(data)):
        path = os.path.join(data, name)
        if name.startswith("before-restore-") and os.path.isdir(path):
            if args.older_than is not None and \
                    (now - set_aside_at(name, path)).total_seconds() < args.older_than:
                kept.append(path)
                continue
            try:
                freed += remove_tree(path)
            except OSError as e:
                raise Failure(f"deleting {path}: {e}") from None
            log(f"deleted {path}")
            removed.append(path)
    emit({"removed": removed, "kept": kept, "freed": freed})
    return 0


# --- arguments ---------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def backup_id(text):
    if not ID_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a backup ID (letters, digits, '.', '_', '-'; 200 at most; not "
            "starting with '.', '_' or '-')")
    return text


def parse(argv):
    parser = Parser(prog="zodb_backup.py", description="ZODB backups with repozo and blobs",
                    add_help=True)
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    p = sub.add_parser("backup")
    p.add_argument("--data", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--id", required=True, type=backup_id)
    p.add_argument("--gzip", action="store_true", help="compress the repozo files")
    p.add_argument("--full", action="store_true", help="a full repozo backup")
    p = sub.add_parser("restore")
    p.add_argument("--data", required=True)
    p.add_argument("--repo", required=True)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--id", type=backup_id)
    which.add_argument("--at")
    p = sub.add_parser("list")
    p.add_argument("--repo", required=True)
    p = sub.add_parser("prune")
    p.add_argument("--repo", required=True)
    p.add_argument("--keep", required=True, action="append", type=backup_id)
    p = sub.add_parser("forget-before")
    p.add_argument("--data", required=True)
    p.add_argument("--older-than", type=int, default=None,
                   help="only copies set aside more than this many seconds ago")
    args = parser.parse_args(argv)
    if args.command is None:
        raise UsageError("no command given")
    for name in ("data", "repo"):
        if getattr(args, name, None) == "":
            raise UsageError(f"--{name} is empty")
    if args.command == "restore" and args.at is not None:
        parse_rfc3339(args.at)
    return args


COMMANDS = {"backup": backup, "restore": restore, "list": list_backups, "prune": prune,
            "forget-before": forget_before}


def terminated(signum, _frame):
    raise Failure(f"terminated by signal {signum}")


def run(argv=None):
    import signal
    signal.signal(signal.SIGTERM, terminated)
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        return COMMANDS[args.command](args)
    except UsageError as e:
        print(f"{PROG}: {e}\n{USAGE}", file=sys.stderr, flush=True)
        return 2
    except Failure as e:
        print(f"{PROG}: FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 - every failure must end in a clear message
        traceback.print_exc()
        print(f"{PROG}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(run())
