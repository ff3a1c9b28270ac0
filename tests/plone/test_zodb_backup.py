"""zodb_backup.py (crates/model/scripts), run for real: backups, restores and prunes of a real
FileStorage with blobs, through repozo, with the venv's Python running the script as a
subprocess, the way the Jobs run it in the site's image.

One history is shared by most tests: a FileStorage with blobs in a temporary DATA/filestorage,
DATA/blobstorage (the /data layout), written by this process through ZODB, and backed up into a
repository (the /backups/SITE layout) after each phase:
    b1  a BTree of 2000 persistent items, 6 blobs                      full
    b2  items changed, added, deleted; a blob changed, one added, one  incremental
        deleted
    b3  the same again                                                 incremental
    b4  the database packed, then one item changed                     full (repozo starts over)
    b5  nothing changed                                                no new repozo file
What the database held at each backup (every item's value, every blob's bytes, and Data.fs
itself) is kept, and each restore is compared with it. Tests that damage or prune a repository
work on a copy of it. Other tests make their own small databases: one backed up with every write
under DATA refused (the backup Job mounts it read-only), one backed up while another process
commits into it.
"""

import copy
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(os.environ.get("MUTU_BACKUP_SCRIPTS")
               or Path(__file__).resolve().parents[2] / "crates" / "model" / "scripts")
ZODB_BACKUP = SCRIPTS / "zodb_backup.py"
TIMEOUT = 120
BACKUPS = ["b1", "b2", "b3", "b4", "b5"]


def run(*args, env=None):
    """The script, as the Job runs it: `python zodb_backup.py ARGS...`."""
    return subprocess.run(
        [sys.executable, str(ZODB_BACKUP), *map(str, args)],
        capture_output=True, text=True, timeout=TIMEOUT,
        env=None if env is None else {**os.environ, **env},
    )


def ok(done):
    """The single JSON line a successful run prints."""
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-4000:]}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {done.stdout!r}"
    return json.loads(lines[0])


def failed_line(done):
    """The last line on stderr of a run that must have failed with exit status 1."""
    assert done.returncode == 1, f"exit {done.returncode}:\n{done.stderr[-4000:]}"
    assert done.stdout == ""
    line = [l for l in done.stderr.splitlines() if l.strip()][-1]
    assert line.startswith("zodb_backup: FAILED: "), line
    return line


# --- the database ---------------------------------------------------------------------------


def open_db(data: Path, read_only=False):
    from ZODB.DB import DB
    from ZODB.FileStorage import FileStorage

    return DB(FileStorage(str(data / "filestorage" / "Data.fs"), read_only=read_only,
                          blob_dir=str(data / "blobstorage")))


def commit(data: Path, model, items=None, deleted=(), blobs=None, deleted_blobs=(),
           pack=False):
    """Writes into the database (and into `model`, what it should then hold): items set
    (a new persistent mapping, or the existing one updated), items deleted, blobs written (new,
    or a new revision of an existing one), blobs deleted; one transaction."""
    import transaction
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping
    from ZODB.blob import Blob

    db = open_db(data)
    try:
        if pack:
            db.pack()
        conn = db.open()
        root = conn.root()
        if "items" not in root:
            root["items"] = OOBTree()
            root["blobs"] = OOBTree()
        tree, blob_tree = root["items"], root["blobs"]
        for key, value in (items or {}).items():
            if key in tree:
                tree[key].update(value)
            else:
                tree[key] = PersistentMapping(value)
            model["items"][key] = dict(value)
        for key in deleted:
            del tree[key]
            del model["items"][key]
        for name, content in (blobs or {}).items():
            blob = blob_tree[name] if name in blob_tree else Blob()
            with blob.open("w") as f:
                f.write(content)
            blob_tree[name] = blob
            model["blobs"][name] = content
        for name in deleted_blobs:
            del blob_tree[name]
            del model["blobs"][name]
        transaction.commit()
        conn.close()
        return db.lastTransaction()
    finally:
        db.close()


def read_state(data: Path):
    """Everything the database holds: {"items": {key: dict}, "blobs": {name: bytes}}."""
    db = open_db(data, read_only=True)
    try:
        conn = db.open()
        root = conn.root()
        state = {"items": {k: dict(v) for k, v in root["items"].items()}, "blobs": {}}
        for name, blob in root["blobs"].items():
            with blob.open("r") as f:
                state["blobs"][name] = f.read()
        conn.close()
        return state
    finally:
        db.close()


def tid_of(rfc3339):
    """The transaction id of an RFC 3339 time, as the script computes it."""
    import datetime as dt

    from persistent.TimeStamp import TimeStamp

    text = re.sub(r"\.(\d{6})\d*", r".\1", rfc3339).replace("Z", "+00:00")
    u = dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    return TimeStamp(u.year, u.month, u.day, u.hour, u.minute,
                     u.second + u.microsecond / 1e6).raw()


def rfc3339_micro(seconds):
    import datetime as dt

    t = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def item(rng, n, version=0):
    return {"n": n, "version": version,
            "title": f"Item {n} v{version}",
            "text": "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(120))}


def files_under(root: Path):
    """{relative path: os.stat} of every file under root."""
    return {str(p.relative_to(root)): p.lstat() for p in root.rglob("*") if not p.is_dir()}


def tree_listing(root: Path):
    """Every path under root with the size and mtime of the files: to see that nothing moved."""
    return sorted((str(p.relative_to(root)), None if p.is_dir() else
                   (p.lstat().st_size, p.lstat().st_mtime_ns, p.lstat().st_ino))
                  for p in root.rglob("*"))


def repozo_stamp_time(name):
    s = name.split(".")[0]  # YYYY-MM-DD-HH-MM-SS
    return f"{s[0:10]}T{s[11:13]}:{s[14:16]}:{s[17:19]}Z"


# --- the shared history -----------------------------------------------------------------------


class History:
    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.repo = root / "backups" / "site"
        self.models = {}  # backup id -> what the database held
        self.datafs = {}  # backup id -> Data.fs's bytes
        self.out = {}  # backup id -> the line backup printed
        self.stderr = {}
        self.commits = []  # (tid, what the database held after it), in order

    def commit(self, model, **changes):
        tid = commit(self.data, model, **changes)
        self.commits.append((tid, copy.deepcopy(model)))
        return tid

    def state_at(self, at):
        """What the database held at time `at` (RFC 3339): after its last commit by then."""
        stop = tid_of(at)
        held = [m for tid, m in self.commits if tid <= stop]
        return held[-1] if held else None

    def between(self, i, j):
        """An RFC 3339 time (microseconds) strictly between commits i and j."""
        from persistent.TimeStamp import TimeStamp

        a, b = (TimeStamp(self.commits[k][0]).timeTime() for k in (i, j))
        return rfc3339_micro((a + b) / 2)

    def backup(self, backup_id, model):
        self.models[backup_id] = copy.deepcopy(model)
        self.datafs[backup_id] = (self.data / "filestorage" / "Data.fs").read_bytes()
        done = run("backup", "--data", self.data, "--repo", self.repo, "--id", backup_id)
        self.out[backup_id] = ok(done)
        self.stderr[backup_id] = done.stderr

    def manifest(self, backup_id):
        return json.loads((self.repo / "backups" / f"{backup_id}.json").read_text())

    def snapshot(self, backup_id):
        return self.repo / "blobs" / self.manifest(backup_id)["blobs"]["snapshot"]

    def fresh(self, name):
        """A new, empty data directory (a new volume)."""
        path = self.root / "restores" / name
        path.mkdir(parents=True)
        return path

    def copy_repo(self, name):
        path = self.root / "repos" / name
        shutil.copytree(self.repo, path, symlinks=True)
        return path


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    h = History(tmp_path_factory.mktemp("zodb-backup"))
    (h.data / "filestorage").mkdir(parents=True)
    rng = random.Random(20260509)
    model = {"items": {}, "blobs": {}}

    # b1: 2000 items in 4 transactions, 6 blobs.
    for start in range(0, 2000, 500):
        h.commit(model, items={f"k{n:05d}": item(rng, n) for n in range(start, start + 500)})
    h.commit(model, blobs={f"blob{i}": rng.randbytes(rng.randrange(40_000, 120_000))
                            for i in range(6)})
    h.backup("b1", model)

    # b2: 50 items changed, 30 added, 20 deleted; blob1 changed, blob6 added, blob2 deleted.
    h.commit(model,
             items={**{f"k{n:05d}": item(rng, n, 1) for n in range(100, 150)},
                  **{f"k{n:05d}": item(rng, n) for n in range(2000, 2030)}},
             deleted=[f"k{n:05d}" for n in range(500, 520)])
    h.commit(model, blobs={"blob1": rng.randbytes(70_000), "blob6": rng.randbytes(50_000)},
             deleted_blobs=["blob2"])
    h.backup("b2", model)

    # b3: 10 items changed (some changed in b2 already), 5 deleted, 5 added; blob3 changed,
    # blob7 added.
    h.commit(model,
             items={**{f"k{n:05d}": item(rng, n, 2) for n in range(140, 150)},
                  **{f"k{n:05d}": item(rng, n) for n in range(3000, 3005)}},
             deleted=[f"k{n:05d}" for n in range(1000, 1005)],
             blobs={"blob3": rng.randbytes(30_000), "blob7": rng.randbytes(60_000)})
    h.backup("b3", model)

    # b4: packed (old revisions and the deleted objects and blobs go), then one change.
    h.commit(model, items={"k00001": item(rng, 1, 3)}, pack=True)
    h.backup("b4", model)

    # b5: no change at all.
    h.backup("b5", model)
    return h


# --- backup -----------------------------------------------------------------------------------


def test_first_backup_is_a_full_repozo_backup_with_a_manifest(history):
    out = history.out["b1"]
    assert set(out) >= {"id", "time", "size", "location"}
    m = history.manifest("b1")
    fs = m["filestorage"]
    assert out["id"] == m["id"] == "b1"
    assert out["location"] == str(history.repo / "backups" / "b1.json")
    assert fs["full"] is True and fs["new"].endswith(".fs") and fs["files"] == [fs["new"]]
    full = history.repo / "filestorage" / fs["new"]
    # repozo copied the whole Data.fs, byte for byte, and the manifest's time is its stamp.
    assert full.read_bytes() == history.datafs["b1"]
    assert fs["size"] == len(history.datafs["b1"])
    assert out["time"] == m["time"] == repozo_stamp_time(fs["new"])
    # Every blob file of the database is in the blob copy, with its bytes.
    snapshot = history.snapshot("b1")
    blob_files = {p.read_bytes() for p in snapshot.rglob("*.blob")}
    assert blob_files == set(history.models["b1"]["blobs"].values())
    index = history.repo / "filestorage" / fs["index"]
    copied = sum(st.st_size for st in files_under(snapshot).values())
    assert m["blobs"]["copied_bytes"] == copied and m["blobs"]["linked_files"] == 0
    assert out["size"] == m["size"] == full.stat().st_size + index.stat().st_size + copied


@pytest.mark.parametrize("before,after", [("b1", "b2"), ("b2", "b3")])
def test_incremental_backup_adds_only_what_changed(history, before, after):
    m = history.manifest(after)
    fs = m["filestorage"]
    assert fs["full"] is False and fs["new"].endswith(".deltafs")
    assert fs["files"] == history.manifest(before)["filestorage"]["files"] + [fs["new"]]
    delta = history.repo / "filestorage" / fs["new"]
    # The delta is exactly the transactions appended since the previous backup.
    old, new = history.datafs[before], history.datafs[after]
    assert new.startswith(old)
    assert delta.read_bytes() == new[len(old):]
    full = history.repo / "filestorage" / fs["files"][0]
    assert delta.stat().st_size < full.stat().st_size / 10, "the delta is not small"

    # Blobs: every file of the previous copy is a hard link in the new one (same inode); the
    # only files copied are the new blob revisions.
    prev, cur = files_under(history.snapshot(before)), files_under(history.snapshot(after))
    assert set(prev) <= set(cur)
    for rel, st in prev.items():
        assert cur[rel].st_ino == st.st_ino, f"{rel} was copied, not linked"
    added = {rel for rel in cur if rel not in prev}
    old_blobs, new_blobs = history.models[before]["blobs"], history.models[after]["blobs"]
    changed = [b for name, b in new_blobs.items() if old_blobs.get(name) != b]
    assert sorted((history.snapshot(after) / rel).read_bytes() for rel in added) == \
        sorted(changed)
    assert m["blobs"]["copied_files"] == len(added)
    assert m["blobs"]["copied_bytes"] == sum(len(b) for b in changed)
    assert m["blobs"]["linked_files"] == len(prev)
    index = history.repo / "filestorage" / fs["index"]
    assert m["size"] == delta.stat().st_size + index.stat().st_size + m["blobs"]["copied_bytes"]
    assert m["total"] > 5 * m["size"]


def test_backup_after_a_pack_is_a_full_one(history):
    m = history.manifest("b4")
    fs = m["filestorage"]
    assert fs["full"] is True and fs["files"] == [fs["new"]] and fs["new"].endswith(".fs")
    assert (history.repo / "filestorage" / fs["new"]).read_bytes() == history.datafs["b4"]
    # The pack removed the blob files of old revisions and deleted blobs: not in the copy.
    blob_files = sorted(p.read_bytes() for p in history.snapshot("b4").rglob("*.blob"))
    assert blob_files == sorted(history.models["b4"]["blobs"].values())


def test_backup_without_changes_adds_nothing(history):
    m, b4 = history.manifest("b5"), history.manifest("b4")
    assert m["size"] == 0 and history.out["b5"]["size"] == 0
    assert m["filestorage"]["new"] is None
    assert m["filestorage"]["files"] == b4["filestorage"]["files"]
    assert m["blobs"]["snapshot"] == b4["blobs"]["snapshot"] and m["blobs"]["reused"] is True
    assert m["time"] > b4["time"]


def test_backup_again_with_the_same_id_does_nothing(history):
    before = tree_listing(history.repo)
    done = run("backup", "--data", history.data, "--repo", history.repo, "--id", "b2")
    assert ok(done) == history.out["b2"]
    assert "exists already" in done.stderr
    assert tree_listing(history.repo) == before


def test_list_gives_every_backup_in_order(history):
    listed = ok(run("list", "--repo", history.repo))
    assert [b["id"] for b in listed] == BACKUPS
    times = [b["time"] for b in listed]
    assert times == sorted(times) and len(set(times)) == len(times)
    for b in listed:
        m = history.manifest(b["id"])
        assert (b["time"], b["size"], b["total"]) == (m["time"], m["size"], m["total"])


# --- restore ------------------------------------------------------------------------------------


def assert_restored(history, data: Path, backup_id):
    """data holds exactly what the database held at backup_id, and only that."""
    assert (data / "filestorage" / "Data.fs").read_bytes() == history.datafs[backup_id]
    state = read_state(data)
    model = history.models[backup_id]
    assert state["items"] == model["items"]
    assert state["blobs"].keys() == model["blobs"].keys()
    for name, content in model["blobs"].items():
        assert state["blobs"][name] == content, f"blob {name} differs"
    assert not [p for p in data.iterdir() if p.name.startswith(".restore-")]


@pytest.mark.parametrize("backup_id", BACKUPS)
def test_restore_by_id_gives_back_exactly_that_state(history, backup_id):
    data = history.fresh(f"by-id-{backup_id}")
    out = ok(run("restore", "--data", data, "--repo", history.repo, "--id", backup_id))
    assert out["id"] == backup_id and out["time"] == history.manifest(backup_id)["time"]
    assert out["before"] is None  # nothing was there
    assert_restored(history, data, backup_id)
    assert sorted(p.name for p in data.iterdir()) == ["blobstorage", "filestorage"]


def shifted(rfc3339, seconds, offset_hours=0):
    import datetime as dt

    t = dt.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    t = (t + dt.timedelta(seconds=seconds)).astimezone(
        dt.timezone(dt.timedelta(hours=offset_hours)))
    return t.isoformat()


def in_zone(rfc3339, hours):
    """The same instant, written with a UTC offset of `hours`."""
    import datetime as dt

    t = dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return t.astimezone(dt.timezone(dt.timedelta(hours=hours))).isoformat()


def assert_state(data: Path, model):
    """data holds exactly `model`: every item and every blob's bytes."""
    state = read_state(data)
    assert state["items"] == model["items"]
    assert state["blobs"].keys() == model["blobs"].keys()
    for name, content in model["blobs"].items():
        assert state["blobs"][name] == content, f"blob {name} differs"
    assert not [p for p in data.iterdir() if p.name.startswith(".restore-")]


def test_restore_at_a_time_gives_exactly_the_state_at_that_time(history):
    # Commits: 0-3 items, 4 blobs (b1); 5 items, 6 blobs (b2); 7 (b3); 8 pack + change (b4).
    cases = [
        # Between the two commits of b2: b2 without its last transaction (blobs as in b1).
        (history.between(5, 6), "b2", True),
        # After b2's last commit, before b3's: b3 cut there is b2's state.
        (history.between(6, 7), "b3", True),
        # The same kind of time with another offset, and with nanoseconds (as Kubernetes'
        # times may have).
        (in_zone(history.between(5, 6), 2), "b2", True),
        (history.between(6, 7)[:-1] + "999Z", "b3", True),
        # After the last change, before the last backup ran: that backup, as it is.
        (history.manifest("b5")["time"], "b5", False),
    ]
    for n, (at, backup, cut) in enumerate(cases):
        data = history.fresh(f"at-{n}")
        out = ok(run("restore", "--data", data, "--repo", history.repo, "--at", at))
        if backup is not None:
            assert out["id"] == backup, f"--at {at}: {out}"
            assert out["at"] == (at if cut else None), f"--at {at}: {out}"
        want = history.state_at(at)
        assert want is not None
        assert_state(data, want)
    # The cut of b2 is not b1 nor b2: the items of its first commit, b1's blobs.
    mid = history.state_at(history.between(5, 6))
    assert mid["items"] == history.models["b2"]["items"]
    assert mid["blobs"] == history.models["b1"]["blobs"]


@pytest.mark.parametrize("when,refusal", [
    ("before", "no backup holds the state at"),
    ("across-pack", "packed (or backed up in full) between backups 'b3'"),
    ("after", "is after the last backup 'b5'"),
])
def test_restore_at_a_time_the_repository_cannot_give_is_refused(history, when, refusal):
    at = {
        "before": shifted(history.manifest("b1")["time"], -3600),
        # Between b3's commit and the pack: the pack dropped that history.
        "across-pack": history.between(7, 8),
        "after": shifted(history.manifest("b5")["time"], 86400),
    }[when]
    data = history.fresh(f"at-refused-{when}")
    line = failed_line(run("restore", "--data", data, "--repo", history.repo, "--at", at))
    assert refusal in line, line
    assert list(data.iterdir()) == []


def test_restore_without_id_or_time_takes_the_latest(history):
    data = history.fresh("latest")
    assert ok(run("restore", "--data", data, "--repo", history.repo))["id"] == "b5"
    assert_restored(history, data, "b5")


def test_restore_keeps_the_current_data_aside_until_forget_before(history):
    data = history.fresh("aside")
    ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b3"))
    out = ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b1"))
    assert_restored(history, data, "b1")
    before = Path(out["before"])
    assert before.parent == data and before.name.startswith("before-restore-")
    assert_restored(history, before, "b3")  # the data that was in place, whole

    forgotten = ok(run("forget-before", "--data", data))
    assert forgotten["removed"] == [str(before)] and forgotten["freed"] > 0
    assert not before.exists()
    assert sorted(p.name for p in data.iterdir()) == ["blobstorage", "filestorage"]
    assert_restored(history, data, "b1")


def test_forget_before_older_than_keeps_the_recent_copies(history):
    data = history.fresh("older")
    ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b3"))
    recent = Path(ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b1"))["before"])
    # A copy set aside ten days ago (its STAMP says when), and one whose name says nothing
    # (its mtime, two days ago, counts).
    old = data / "before-restore-20200101T000000Z"
    shutil.copytree(recent, old)
    odd = data / "before-restore-odd"
    shutil.copytree(recent, odd)
    two_days = time.time() - 2 * 86400
    os.utime(odd, (two_days, two_days))
    week = 7 * 86400
    out = ok(run("forget-before", "--data", data, "--older-than", str(week)))
    assert out["removed"] == [str(old)], out
    assert sorted(out["kept"]) == sorted([str(recent), str(odd)]), out
    assert not old.exists() and recent.exists() and odd.exists()
    out = ok(run("forget-before", "--data", data, "--older-than", str(86400)))
    assert out["removed"] == [str(odd)] and out["kept"] == [str(recent)], out
    assert_restored(history, data, "b1")
    assert_restored(history, recent, "b3")


def test_failed_restore_leaves_the_data_as_it_was(history):
    repo = history.copy_repo("corrupt")
    delta = repo / "filestorage" / history.manifest("b2")["filestorage"]["new"]
    damaged = bytearray(delta.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, one byte off
    delta.write_bytes(bytes(damaged))
    data = history.fresh("corrupt")
    ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b1"))
    listing = tree_listing(data)

    line = failed_line(run("restore", "--data", data, "--repo", repo, "--id", "b2"))
    assert delta.name in line and "checksum" in line, line
    assert "not changed" in line
    assert tree_listing(data) == listing  # same files, same inodes: never moved
    assert_restored(history, data, "b1")

    delta.unlink()
    line = failed_line(run("restore", "--data", data, "--repo", repo, "--id", "b3"))
    assert str(delta) in line and "missing" in line, line
    assert tree_listing(data) == listing


def test_failure_once_the_data_is_swapped_puts_the_original_back(history):
    data = history.fresh("swap")
    ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b2"))
    listing = tree_listing(data)
    line = failed_line(run("restore", "--data", data, "--repo", history.repo, "--id", "b4",
                           env={"ZODB_BACKUP_INJECT_FAILURE": "after-swap"}))
    assert "injected" in line and "original data was put back" in line, line
    assert tree_listing(data) == listing
    assert_restored(history, data, "b2")


def test_restore_refuses_a_database_in_use(history):
    data = history.fresh("in-use")
    ok(run("restore", "--data", data, "--repo", history.repo, "--id", "b1"))
    data_fs = data / "filestorage" / "Data.fs"
    inode, content = data_fs.stat().st_ino, data_fs.read_bytes()
    db = open_db(data)  # holds Data.fs.lock, like a running ZEO server
    try:
        line = failed_line(run("restore", "--data", data, "--repo", history.repo))
        assert "in use" in line and "Data.fs.lock" in line, line
    finally:
        db.close()
    assert not [p for p in data.iterdir() if p.name not in ("filestorage", "blobstorage")]
    assert data_fs.stat().st_ino == inode and data_fs.read_bytes() == content
    assert read_state(data) == history.models["b1"]


# --- prune --------------------------------------------------------------------------------------


def test_prune_keeping_one_backup_keeps_its_whole_chain(history):
    repo = history.copy_repo("keep-b3")
    out = ok(run("prune", "--repo", repo, "--keep", "b3"))
    assert out["kept"] == ["b3"] and out["deleted"] == ["b1", "b2", "b4", "b5"]
    m = history.manifest("b3")
    # b3 needs the full backup of b1 and the deltas of b2 and b3, though b1 and b2 are gone.
    assert sorted(p.name for p in (repo / "filestorage").iterdir()) == \
        sorted(m["filestorage"]["files"] + [m["filestorage"]["index"],
                                            m["filestorage"]["files"][0][:-3] + ".dat"])
    assert [p.name for p in (repo / "blobs").iterdir()] == [m["blobs"]["snapshot"]]
    assert [b["id"] for b in ok(run("list", "--repo", repo))] == ["b3"]
    data = history.fresh("keep-b3")
    ok(run("restore", "--data", data, "--repo", repo, "--id", "b3"))
    assert_restored(history, data, "b3")
    line = failed_line(run("restore", "--data", history.fresh("keep-b3-b1"), "--repo", repo,
                           "--id", "b1"))
    assert "no backup 'b1'" in line


def test_prune_keeping_two_backups_restores_both(history):
    repo = history.copy_repo("keep-b1-b3")
    out = ok(run("prune", "--repo", repo, "--keep", "b1", "--keep", "b3"))
    assert out["deleted"] == ["b2", "b4", "b5"] and out["freed"] > 0
    remaining = {p.name for p in (repo / "filestorage").iterdir()}
    assert history.manifest("b2")["filestorage"]["new"] in remaining  # b3 needs it
    assert history.manifest("b4")["filestorage"]["new"] not in remaining
    assert not (repo / "blobs" / history.manifest("b2")["blobs"]["snapshot"]).exists()
    for backup_id in ("b1", "b3"):
        data = history.fresh(f"keep-b1-b3-{backup_id}")
        ok(run("restore", "--data", data, "--repo", repo, "--id", backup_id))
        assert_restored(history, data, backup_id)


def test_prune_keeping_no_existing_backup_deletes_nothing(history):
    repo = history.copy_repo("keep-unknown")
    listing = tree_listing(repo)
    line = failed_line(run("prune", "--repo", repo, "--keep", "nope", "--keep", "nada"))
    assert "'nope', 'nada'" in line and "nothing was deleted" in line
    assert tree_listing(repo) == listing
    # A backup not written yet (e.g. still queued) among existing ones keeps nothing.
    out = ok(run("prune", "--repo", repo, "--keep", "b5", "--keep", "nope"))
    assert out["kept"] == ["b5"] and out["unknown"] == ["nope"]
    assert out["deleted"] == ["b1", "b2", "b3", "b4"]
    data = history.fresh("keep-b5")
    ok(run("restore", "--data", data, "--repo", repo))
    assert_restored(history, data, "b5")


# --- the backup Job mounts the data read-only -----------------------------------------------------

# Loaded by every Python process started with it on PYTHONPATH (the script and its repozo): any
# write under READONLY_DATA is logged and refused, as on a read-only mount.
READ_ONLY_HOOK = r"""
import os, sys
_root = os.path.realpath(os.environ["READONLY_DATA"]) + os.sep
_log = os.environ["READONLY_LOG"]
_writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_events = {"os.rename": 2, "os.replace": 2, "os.remove": 1, "os.unlink": 1, "os.mkdir": 1,
           "os.rmdir": 1, "os.link": 2, "os.symlink": 2, "os.chmod": 1, "os.chown": 1,
           "os.utime": 1, "os.truncate": 1}

def _under(path):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return False
    return (os.path.realpath(path) + os.sep).startswith(_root)

def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                   else bool((flags or 0) & _writes))
        paths = [path] if writing else []
    elif event in _events:
        paths = list(args[:_events[event]])
    else:
        return
    for path in paths:
        if _under(path):
            with open(_log, "a") as f:
                f.write(f"{os.getpid()} {event} {path}\n")
            raise OSError(30, "Read-only file system (test hook)", path)

sys.addaudithook(_hook)
"""


def test_backup_writes_nothing_in_the_data(tmp_path):
    """The backup Job mounts /data read-only: a full and an incremental backup must not write
    there (nor their repozo)."""
    data, repo = tmp_path / "data", tmp_path / "repo"
    (data / "filestorage").mkdir(parents=True)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(READ_ONLY_HOOK)
    log = tmp_path / "writes.log"
    env = {"PYTHONPATH": str(hook), "READONLY_DATA": str(data), "READONLY_LOG": str(log)}
    # The hook works: a write under DATA is refused and logged.
    probe = subprocess.run([sys.executable, "-c", f"open({str(data / 'x')!r}, 'w')"],
                           env={**os.environ, **env}, capture_output=True, text=True)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    assert log.read_text().strip().endswith(str(data / "x"))
    log.unlink()

    rng = random.Random(7)
    model = {"items": {}, "blobs": {}}
    commit(data, model, items={f"k{n}": item(rng, n) for n in range(200)},
           blobs={"a": rng.randbytes(30_000)})
    first = ok(run("backup", "--data", data, "--repo", repo, "--id", "r1", env=env))
    commit(data, model, items={"k1": item(rng, 1, 1)}, blobs={"b": rng.randbytes(20_000)})
    second = ok(run("backup", "--data", data, "--repo", repo, "--id", "r2", env=env))
    assert not log.exists(), log.read_text()
    assert second["size"] < first["size"]
    restored = tmp_path / "restored"
    restored.mkdir()
    ok(run("restore", "--data", restored, "--repo", repo, "--id", "r2"))
    assert read_state(restored) == model


# --- a database in use --------------------------------------------------------------------------

WRITER = r"""
import hashlib, os, sys, time
import transaction
from BTrees.OOBTree import OOBTree
from ZODB.blob import Blob
from ZODB.DB import DB
from ZODB.FileStorage import FileStorage

data, log, stop = sys.argv[1:4]
db = DB(FileStorage(data + "/filestorage/Data.fs", blob_dir=data + "/blobstorage"))
conn = db.open()
root = conn.root()
root["items"], root["blobs"], root["counter"] = OOBTree(), OOBTree(), 0
transaction.commit()
with open(log, "w") as out:
    i = 0
    while not os.path.exists(stop) and i < 20000:
        i += 1
        root["counter"] = i
        root["items"]["i%06d" % i] = i
        if i % 3 == 0:
            blob = Blob()
            with blob.open("w") as f:
                f.write(hashlib.sha256(str(i).encode()).digest() * (300 + i % 500))
            root["blobs"]["b%06d" % i] = blob
        transaction.commit()
        out.write("%d %s\n" % (i, root._p_serial.hex()))
        out.flush()
        time.sleep(0.002)
db.close()
"""


def writer_blob(i):
    return hashlib.sha256(str(i).encode()).digest() * (300 + i % 500)


def test_backup_while_another_process_commits_is_consistent(tmp_path):
    """A process commits (items and blobs) all along two backups (gzipped: repozo's .fsz and
    .deltafsz); each restores to a state it committed, whole. Then a forced full backup."""
    data, repo = tmp_path / "data", tmp_path / "repo"
    (data / "filestorage").mkdir(parents=True)
    log, stop = tmp_path / "commits.log", tmp_path / "stop"

    def commits():
        return log.read_text().splitlines() if log.exists() else []

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(log), str(stop)],
                              stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for backup_id, wait_for in (("w1", 30), ("w2", 60)):
            deadline = time.monotonic() + 30
            while len(commits()) < len(seen) + wait_for:
                assert writer.poll() is None, f"the writer died:\n{writer.stderr.read()}"
                assert time.monotonic() < deadline, "the writer does not commit"
                time.sleep(0.05)
            seen = commits()
            ok(run("backup", "--data", data, "--repo", repo, "--id", backup_id, "--gzip"))
            assert len(commits()) > len(seen), "no commit during the backup: proves nothing"
            seen = commits()
    finally:
        stop.touch()
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
    tids = dict(reversed(line.split()) for line in commits())  # tid -> counter
    # Once the writer stopped, a forced full backup: the final state.
    ok(run("backup", "--data", data, "--repo", repo, "--id", "w3", "--gzip", "--full"))
    news = [json.loads((repo / "backups" / f"{b}.json").read_text())["filestorage"]["new"]
            for b in ("w1", "w2", "w3")]
    assert [n.split(".")[1] for n in news] == ["fsz", "deltafsz", "fsz"]

    counters = []
    for backup_id in ("w1", "w2", "w3"):
        restored = tmp_path / f"restored-{backup_id}"
        restored.mkdir()
        ok(run("restore", "--data", restored, "--repo", repo, "--id", backup_id))
        db = open_db(restored, read_only=True)
        try:
            last = db.storage.lastTransaction().hex()
            conn = db.open()
            root = conn.root()
            counter = root["counter"]
            # A state the writer committed, whole: its last transaction and everything before.
            assert tids.get(last) == str(counter), "not a state the writer committed"
            assert dict(root["items"].items()) == {"i%06d" % i: i
                                                   for i in range(1, counter + 1)}
            blobs = {}
            for name, blob in root["blobs"].items():
                with blob.open("r") as f:
                    blobs[name] = f.read()
            assert blobs == {"b%06d" % i: writer_blob(i)
                             for i in range(3, counter + 1, 3)}
            conn.close()
        finally:
            db.close()
        counters.append(counter)
    assert 0 < counters[0] < counters[1] < counters[2] == len(tids)


# --- arguments and failures ---------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["backup"],
    ["backup", "--data", "{data}", "--repo", "{repo}"],
    ["backup", "--data", "{data}", "--repo", "{repo}", "--id", "../escape"],
    ["backup", "--data", "{data}", "--repo", "{repo}", "--id", "x", "--bogus"],
    ["restore", "--data", "{data}", "--repo", "{repo}", "--id", "x",
     "--at", "2026-01-01T00:00:00Z"],
    ["restore", "--data", "{data}", "--repo", "{repo}", "--at", "yesterday"],
    ["restore", "--data", "{data}", "--repo", "{repo}", "--at", "2026-01-01T00:00:00"],
    ["restore", "--data", "{data}", "--repo", "{repo}", "--at", "2026-02-30T00:00:00Z"],
    ["list"],
    ["prune", "--repo", "{repo}"],
    ["forget-before"],
], ids=lambda a: " ".join(a) or "nothing")
def test_bad_arguments_exit_2(tmp_path, args):
    data, repo = tmp_path / "data", tmp_path / "repo"
    data.mkdir()
    done = run(*[a.format(data=data, repo=repo) for a in args])
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "usage:" in done.stderr and "FAILED" not in done.stderr
    assert not repo.exists() and list(data.iterdir()) == []


def test_failures_name_the_missing_path(tmp_path):
    data, repo = tmp_path / "data", tmp_path / "repo"
    data.mkdir()
    line = failed_line(run("backup", "--data", data, "--repo", repo, "--id", "x"))
    assert line.endswith(f"no FileStorage at {data / 'filestorage' / 'Data.fs'}")
    assert not (repo / "backups" / "x.json").exists()
    line = failed_line(run("restore", "--data", data, "--repo", tmp_path / "none"))
    assert f"no backup repository at {tmp_path / 'none'}" in line
    line = failed_line(run("restore", "--data", data, "--repo", repo, "--id", "x"))
    assert f"no backup in {repo}" in line
    assert list(data.iterdir()) == []
