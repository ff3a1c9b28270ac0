"""Tests of crates/model/scripts/volume_backup.sh, run as the backup Jobs run it: `sh
volume_backup.sh ...` with only busybox's applets on PATH (a directory of links to busybox), as
root when the tests are (owners are then checked too). "The same volume" is checked exactly:
every path, its type, mode, owner (as root; not a symlink's, see snapshot), content and symlink
target.

Only the standard library and a busybox binary (MUTU_BUSYBOX, else `busybox` on PATH).
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "..", "crates", "model", "scripts",
                                       "volume_backup.sh"))
APPLETS = ["sh", "tar", "gzip", "date", "wc", "tr", "mv", "rm", "mkdir", "cat", "printf",
           "sleep"]
ROOT = os.geteuid() == 0


def snapshot(top):
    """Every path under `top` with what "the same" compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, top)
            entry = {"mode": stat.S_IMODE(st.st_mode), "type": stat.S_IFMT(st.st_mode)}
            # busybox's tar does not give a symlink its owner back (nothing reads it).
            if ROOT and not stat.S_ISLNK(st.st_mode):
                entry["owner"] = (st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry["content"] = f.read()
            out[rel] = entry
    return out


class VolumeBackupTest(unittest.TestCase):
    """With busybox's applets linked on PATH, as in a busybox image."""

    APPLETS = APPLETS
    def setUp(self):
        busybox = os.environ.get("MUTU_BUSYBOX") or shutil.which("busybox")
        if not busybox:
            self.fail("no busybox: tests/setup.sh installs busybox-static")
        self.tmp = tempfile.mkdtemp(prefix="mutu-voltest-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        for applet in self.APPLETS:
            os.symlink(busybox, os.path.join(self.bin, applet))
        self.data = os.path.join(self.tmp, "data")
        self.repo = os.path.join(self.tmp, "backups", "notes")
        os.makedirs(self.data)
        self.fill()

    def fill(self):
        """A volume as an application leaves it: files, a hidden one, a binary one, an empty
        directory, a symlink, modes and (as root) owners of its own."""
        os.makedirs(os.path.join(self.data, "notes", "2026"))
        os.makedirs(os.path.join(self.data, "empty"))
        with open(os.path.join(self.data, "notes", "2026", "council.txt"), "w") as f:
            f.write("Ordre du jour\n")
        with open(os.path.join(self.data, ".state"), "wb") as f:
            f.write(bytes(range(256)) * 64)
        os.chmod(os.path.join(self.data, ".state"), 0o600)
        os.symlink("notes/2026/council.txt", os.path.join(self.data, "latest"))
        if ROOT:
            for dirpath, dirnames, filenames in os.walk(self.data):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), 1000, 1000)

    def run_script(self, *args):
        return subprocess.run(["sh", SCRIPT, *args], capture_output=True, text=True,
                              env={"PATH": self.bin}, timeout=60)

    def ok(self, *args):
        p = self.run_script(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_backup_change_restore_gives_the_same_volume(self):
        before = snapshot(self.data)
        line = self.ok("backup", "--data", self.data, "--repo", self.repo, "--id", "b1")
        self.assertEqual(line["id"], "b1")
        self.assertTrue(os.path.isfile(line["location"]))
        self.assertEqual(line["size"], os.path.getsize(line["location"]))
        self.assertGreaterEqual(line["files"], len(before))
        # The application changes, deletes and adds.
        with open(os.path.join(self.data, "notes", "2026", "council.txt"), "w") as f:
            f.write("changed\n")
        os.remove(os.path.join(self.data, ".state"))
        with open(os.path.join(self.data, "new.txt"), "w") as f:
            f.write("written after the backup\n")
        changed = snapshot(self.data)
        out = self.ok("restore", "--data", self.data, "--repo", self.repo, "--id", "b1")
        self.assertEqual(out["id"], "b1")
        self.assertEqual(snapshot(self.data), before)
        # What the restore replaced is a backup of its own, restorable.
        saved = os.path.basename(out["before"])[: -len(".tar.gz")]
        self.assertTrue(saved.startswith("before-restore-"), saved)
        self.ok("restore", "--data", self.data, "--repo", self.repo, "--id", saved)
        self.assertEqual(snapshot(self.data), changed)

    def test_a_backup_that_exists_is_not_taken_again(self):
        first = self.ok("backup", "--data", self.data, "--repo", self.repo, "--id", "b1")
        with open(os.path.join(self.data, "new.txt"), "w") as f:
            f.write("later\n")
        again = self.ok("backup", "--data", self.data, "--repo", self.repo, "--id", "b1")
        self.assertEqual(first, again)

    def test_an_empty_volume_is_backed_up_and_restored(self):
        shutil.rmtree(self.data)
        os.makedirs(self.data)
        self.ok("backup", "--data", self.data, "--repo", self.repo, "--id", "empty")
        self.fill()
        self.ok("restore", "--data", self.data, "--repo", self.repo, "--id", "empty")
        self.assertEqual(snapshot(self.data), {})

    def test_an_unreadable_archive_is_refused_and_the_volume_left_alone(self):
        self.ok("backup", "--data", self.data, "--repo", self.repo, "--id", "b1")
        archive = os.path.join(self.repo, "volume", "b1.tar.gz")
        with open(archive, "r+b") as f:
            f.truncate(os.path.getsize(archive) // 2)
        with open(os.path.join(self.data, "new.txt"), "w") as f:
            f.write("kept\n")
        now = snapshot(self.data)
        p = self.run_script("restore", "--data", self.data, "--repo", self.repo, "--id", "b1")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("volume_backup: FAILED: check archive:", p.stderr.strip().splitlines()[-1])
        self.assertEqual(snapshot(self.data), now)

    def test_prune_keeps_what_it_is_asked_to_and_the_before_restore_archives(self):
        for b in ["b1", "b2", "b3"]:
            self.ok("backup", "--data", self.data, "--repo", self.repo, "--id", b)
        restored = self.ok("restore", "--data", self.data, "--repo", self.repo, "--id", "b1")
        out = self.ok("prune", "--repo", self.repo, "--keep", "b3", "--keep", "gone")
        self.assertEqual(out, {"kept": ["b3"], "unknown": ["gone"], "deleted": ["b1", "b2"]})
        left = sorted(os.listdir(os.path.join(self.repo, "volume")))
        before = os.path.basename(restored["before"])[: -len(".tar.gz")]
        self.assertEqual(left, sorted(["b3.json", "b3.tar.gz", before + ".json",
                                       before + ".tar.gz"]))
        # Keeping nothing that exists deletes nothing.
        p = self.run_script("prune", "--repo", self.repo, "--keep", "gone")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(sorted(os.listdir(os.path.join(self.repo, "volume"))), left)

    def test_bad_arguments_exit_2_and_touch_nothing(self):
        for args in [[], ["backup"], ["backup", "--data", self.data, "--repo", self.repo],
                     ["backup", "--data", self.data, "--repo", self.repo, "--id", ".hidden"],
                     ["backup", "--data", self.data, "--repo", self.repo, "--id", "a/b"],
                     ["backup", "--data", self.data, "--repo", self.repo, "--id",
                      "before-restore-1"],
                     ["prune", "--repo", self.repo], ["explode", "--repo", self.repo]]:
            p = self.run_script(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
        self.assertFalse(os.path.exists(self.repo))


class MinimalBusyboxTest(VolumeBackupTest):
    """The same, with nothing on PATH but `sh` and `busybox` (as in an image made of the busybox
    binary and a shell link): the script runs the tools as busybox applets."""

    APPLETS = ["sh", "busybox"]


if __name__ == "__main__":
    unittest.main()
