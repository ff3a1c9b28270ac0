"""Tests of crates/model/scripts/pg_backup.sh against a real PostgreSQL server.

The module starts its own server (initdb in a temporary directory, listening on 127.0.0.1 only,
on a free port, no Unix socket, password authentication), as an unprivileged user when run as
root (initdb refuses root): Debian's `postgres` user, else `nobody`. Every test gets a database
of its own, owned by the role the DSN names, with RelStorage's tables (history-free, PostgreSQL:
object_state, blob_chunk whose chunks are large objects with RelStorage's delete trigger, ...) and
rows with known binary content, and runs the script as the backup Jobs do (`sh pg_backup.sh ...`
with RELSTORAGE_DSN). "The same database" is checked exactly: every row of every table, the
sequences, the large objects' bytes and owners, tables, columns, constraints, indexes, triggers
and functions.

Only the standard library; the programs come from MUTU_PG_BIN (run.sh sets it). Set
MUTU_PG_TEST_KEEP=1 to keep the server's directory (and its log) after the run.
"""

import atexit
import hashlib
import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "crates", "model", "scripts", "pg_backup.sh")
SCRIPT = os.path.normpath(SCRIPT)
BIN = os.environ.get("MUTU_PG_BIN", "")

ROLE = "delib"
# A space, a quote and a backslash: the DSN has to quote it, the script has to find it to hide it.
PASSWORD = "s3cr3t pw'\\9x"
WRONG_PASSWORD = "Wr0ng 'pa$$\\word"


def dsn_quote(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_literal(value):
    return "'" + value.replace("'", "''") + "'"


def hex_literal(data):
    return "'\\x" + data.hex() + "'::bytea"


class Server:
    """A PostgreSQL server of the tests' own."""

    def __init__(self):
        self.dir = None
        self.port = None
        self.proc_prefix = []
        self.user = None
        self.superpw = "super-" + os.urandom(8).hex()

    def run_as(self, args, **kw):
        return subprocess.run(self.proc_prefix + args, check=True, capture_output=True, text=True, **kw)

    def start(self):
        if not BIN or not os.path.isfile(os.path.join(BIN, "initdb")):
            raise RuntimeError("MUTU_PG_BIN must name the directory of initdb (tests/postgres/run.sh sets it)")
        self.dir = tempfile.mkdtemp(prefix="mutu-pgtest-")
        os.chmod(self.dir, 0o711)
        server_dir = os.path.join(self.dir, "server")
        os.mkdir(server_dir, 0o700)
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    entry = pwd.getpwnam(name)
                    break
                except KeyError:
                    entry = None
            if entry is None:
                raise RuntimeError("running as root, and there is neither a postgres nor a nobody user")
            self.user = entry.pw_name
            self.proc_prefix = ["runuser", "-u", self.user, "--"]
            os.chown(server_dir, entry.pw_uid, entry.pw_gid)
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        pwfile = os.path.join(server_dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.superpw + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self.data = os.path.join(server_dir, "data")
        self.log = os.path.join(server_dir, "log")
        self.run_as([os.path.join(BIN, "initdb"), "-D", self.data, "-U", "postgres", "--pwfile", pwfile,
                     "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"])
        os.unlink(pwfile)
        last = None
        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories= "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            try:
                self.run_as([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                             "-o", opts, "start"])
                self.port = port
                break
            except subprocess.CalledProcessError as e:
                last = e
        if self.port is None:
            log = Path(self.log).read_text()[-3000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"the test server did not start: {last.stderr}\n{log}")
        print(f"==> PostgreSQL server as user {self.user} on 127.0.0.1:{self.port} in {server_dir}",
              file=sys.stderr, flush=True)
        self.psql("postgres", f"CREATE ROLE {ROLE} LOGIN PASSWORD {sql_literal(PASSWORD)}")

    def stop(self):
        if self.dir is None:
            return
        if self.port is not None:
            subprocess.run(self.proc_prefix + [os.path.join(BIN, "pg_ctl"), "-D", self.data, "-m", "fast",
                                               "-w", "stop"], capture_output=True)
            self.port = None
        if os.environ.get("MUTU_PG_TEST_KEEP"):
            print(f"==> kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PATH"] = BIN + os.pathsep + os.environ.get("PATH", "")
        env["PGPASSFILE"] = os.path.join(self.dir, "no-pgpass")  # never ~/.pgpass
        return env

    def psql(self, db, sql, user="postgres", password=None, check=True):
        """Runs SQL (from stdin, stopping at the first error); returns psql's output (-At)."""
        env = self.env()
        env["PGPASSWORD"] = self.superpw if user == "postgres" else (password or PASSWORD)
        p = subprocess.run([os.path.join(BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db],
                           input=sql, env=env, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"psql failed ({p.returncode}): {p.stderr}")
        return p.stdout

    def dsn(self, db, password=PASSWORD):
        return f"host=127.0.0.1 port={self.port} dbname={db} user={ROLE} password={dsn_quote(password)}"


SERVER = Server()


def setUpModule():
    if not os.path.isfile(SCRIPT):
        raise RuntimeError(f"no {SCRIPT}")
    atexit.register(SERVER.stop)
    SERVER.start()


def tearDownModule():
    SERVER.stop()


SCHEMA = r"""
-- RelStorage's history-free schema on PostgreSQL (as RelStorage creates it, trimmed).
CREATE SEQUENCE zoid_seq;
CREATE TABLE commit_row_lock (tid BIGINT NOT NULL);
CREATE TABLE object_state (
    zoid        BIGINT NOT NULL PRIMARY KEY,
    tid         BIGINT NOT NULL CHECK (tid > 0),
    state_size  BIGINT NOT NULL CHECK (state_size >= 0),
    state_md5   CHAR(32),
    state       BYTEA
);
CREATE INDEX object_state_tid ON object_state (tid);
CREATE TABLE blob_chunk (
    zoid        BIGINT NOT NULL,
    chunk_num   BIGINT NOT NULL,
    tid         BIGINT NOT NULL,
    chunk       OID NOT NULL,
    PRIMARY KEY (zoid, chunk_num),
    FOREIGN KEY (zoid) REFERENCES object_state (zoid) ON DELETE CASCADE
);
CREATE INDEX blob_chunk_loid ON blob_chunk (chunk);
CREATE OR REPLACE FUNCTION blob_chunk_delete_trigger() RETURNS TRIGGER
AS $blob_chunk_delete_trigger$
  -- Unlink large object data file after blob_chunk row deletion
  DECLARE
  cnt integer;
BEGIN
  SELECT count(*) into cnt FROM blob_chunk WHERE chunk=OLD.chunk;
  IF (cnt = 1) THEN
    -- Last reference to this oid, unlink
    PERFORM lo_unlink(OLD.chunk);
  END IF;
  RETURN OLD;
END;
$blob_chunk_delete_trigger$ LANGUAGE plpgsql;
CREATE TRIGGER blob_chunk_delete BEFORE DELETE ON blob_chunk
  FOR EACH ROW EXECUTE PROCEDURE blob_chunk_delete_trigger();
CREATE TABLE object_ref (zoid BIGINT NOT NULL, to_zoid BIGINT NOT NULL, PRIMARY KEY (zoid, to_zoid));
CREATE TABLE object_refs_added (zoid BIGINT NOT NULL PRIMARY KEY, tid BIGINT NOT NULL);
CREATE TABLE pack_object (zoid BIGINT NOT NULL PRIMARY KEY, keep BOOLEAN NOT NULL,
                          keep_tid BIGINT NOT NULL, visited BOOLEAN NOT NULL DEFAULT FALSE);

-- Not RelStorage's: what the restore must not take for its own statements.
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
CREATE TABLE "Odd ""Name"" x" (id INT PRIMARY KEY, v TEXT);
CREATE PROCEDURE commit_in_body() LANGUAGE plpgsql AS $$
BEGIN
COMMIT;
END
$$;
"""

NOTES = ["COMMIT;", "BEGIN;", "\\.", "COPY public.notes (id, body) FROM stdin;",
         "SELECT pg_catalog.lo_create('1');", "line one\nline two\n", "tab\there", "back\\slash",
         "héllo ✓ ünïcödé", "", None, "\\unrestrict x"]


class PgBackupTest(unittest.TestCase):

    def setUp(self):
        self.db = "t_" + self._testMethodName.removeprefix("test_")[:50]
        SERVER.psql("postgres", f"CREATE DATABASE {self.db} OWNER {ROLE}")
        self.addCleanup(SERVER.psql, "postgres", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        self.repo = tempfile.mkdtemp(prefix="repo-", dir=SERVER.dir)
        self.pgdir = os.path.join(self.repo, "pg")
        self.rnd = random.Random(self._testMethodName)
        self.as_owner(SCHEMA)
        self.load()

    # --- The database -------------------------------------------------------------------------

    def as_owner(self, sql):
        return SERVER.psql(self.db, sql, user=ROLE)

    def load(self):
        r = self.rnd
        states = {1: bytes(range(256)) * 4, 2: b"", 3: None, 4: b"\\.\n\\.\r\n\x00COMMIT;\n"}
        for zoid in range(5, 400):
            states[zoid] = r.randbytes(r.randrange(0, 2000))
        sql = ["BEGIN;"]
        for zoid, state in states.items():
            sql.append(self.state_row(zoid, r.randrange(1, 10**15), state))
        refs = {(r.randrange(400), r.randrange(400)) for _ in range(500)}
        sql += [f"INSERT INTO object_ref VALUES ({a}, {b});" for a, b in sorted(refs)]
        sql += [f"INSERT INTO object_refs_added VALUES ({z}, {r.randrange(1, 10**6)});" for z in range(0, 400, 7)]
        sql.append("INSERT INTO commit_row_lock VALUES (0);")
        # Blobs: a chunk is a large object (one empty), as RelStorage stores them.
        for zoid in range(10, 16):
            for chunk in range(1 + zoid % 3):
                data = b"" if (zoid, chunk) == (10, 0) else r.randbytes(r.randrange(20_000, 150_000))
                sql.append(self.blob_row(zoid, chunk, 42, data))
        for i, body in enumerate(NOTES):
            sql.append(f"INSERT INTO notes VALUES ({i}, {'NULL' if body is None else sql_literal(body)});")
        sql.append("""INSERT INTO "Odd ""Name"" x" VALUES (1, 'one'), (2, E'two\\nlines');""")
        sql.append("SELECT setval('zoid_seq', 399);")
        sql.append("COMMIT;")
        self.as_owner("\n".join(sql))

    @staticmethod
    def state_row(zoid, tid, state):
        if state is None:
            return f"INSERT INTO object_state VALUES ({zoid}, {tid}, 0, NULL, NULL);"
        return (f"INSERT INTO object_state VALUES ({zoid}, {tid}, {len(state)}, "
                f"'{hashlib.md5(state).hexdigest()}', {hex_literal(state)});")

    @staticmethod
    def blob_row(zoid, chunk, tid, data):
        return f"INSERT INTO blob_chunk VALUES ({zoid}, {chunk}, {tid}, lo_from_bytea(0, {hex_literal(data)}));"

    def change(self):
        """Updates, deletes and inserts rows, blobs and large objects, and uses the sequence."""
        r = self.rnd
        sql = ["BEGIN;"]
        for zoid in r.sample(range(20, 400), 60):
            state = r.randbytes(r.randrange(1, 3000))
            sql.append(f"UPDATE object_state SET tid = {r.randrange(10**15, 10**16)}, state_size = {len(state)}, "
                       f"state_md5 = '{hashlib.md5(state).hexdigest()}', state = {hex_literal(state)} "
                       f"WHERE zoid = {zoid};")
        # Deleting object 11 deletes its blob chunks (cascade), whose trigger unlinks their large objects.
        sql.append("DELETE FROM object_state WHERE zoid IN (11, 1, 2) OR zoid BETWEEN 300 AND 330;")
        for zoid in range(400, 450):
            sql.append(self.state_row(zoid, 10**15 + zoid, r.randbytes(r.randrange(0, 1000))))
        sql.append(self.blob_row(400, 0, 10**15, r.randbytes(70_000)))
        sql.append("UPDATE blob_chunk SET tid = 43 WHERE zoid = 12;")
        sql.append("UPDATE notes SET body = 'changed\\.' WHERE id = 0; DELETE FROM notes WHERE id = 2;")
        sql.append("INSERT INTO notes VALUES (100, 'new');")
        sql.append("""DELETE FROM "Odd ""Name"" x" WHERE id = 1;""")
        sql.append("SELECT nextval('zoid_seq') FROM generate_series(1, 7);")
        sql.append("COMMIT;")
        self.as_owner("\n".join(sql))

    def snapshot(self):
        """Everything the tests compare, by section: one psql for the catalog, one for the data."""
        q = SERVER.psql
        tables = q(self.db, """SELECT c.oid::regclass FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                               AND c.relkind = 'r' ORDER BY c.oid::regclass::text""").splitlines()
        catalog = {
            "relations": """SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c
                            WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1""",
            "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                          FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, ordinal_position""",
            "constraints": """SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint
                              WHERE connamespace = 'public'::regnamespace ORDER BY conrelid::regclass::text, conname""",
            "indexes": "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
            "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
            "functions": """SELECT proname, prokind, md5(prosrc), pg_get_userbyid(proowner) FROM pg_proc
                            WHERE pronamespace = 'public'::regnamespace ORDER BY 1""",
            "sequences": "SELECT last_value, is_called FROM zoid_seq",
            "large objects": """SELECT oid, pg_get_userbyid(lomowner), encode(lo_get(oid), 'hex')
                                FROM pg_largeobject_metadata ORDER BY oid""",
        }
        snap = {}
        script = []
        for name, sql in catalog.items():
            script += [f"\\echo '@@ {name}'", sql.strip() + ";"]
        for t in tables:
            ncols = int(q(self.db, f"SELECT relnatts FROM pg_class WHERE oid = {sql_literal(t)}::regclass"))
            order = ", ".join(str(i) for i in range(1, ncols + 1))
            script += [f"\\echo '@@ rows of {t}'", f"COPY (SELECT * FROM {t} ORDER BY {order}) TO STDOUT;"]
        out = q(self.db, "\n".join(script))
        name = None
        for line in out.removesuffix("\n").split("\n"):
            if line.startswith("@@ "):
                name = line[3:]
                snap[name] = []
            elif name is not None:
                snap[name].append(line)
        return {k: "\n".join(v) for k, v in snap.items()}

    def assertSameDatabase(self, expected, msg):
        actual = self.snapshot()
        self.assertEqual(sorted(expected), sorted(actual), f"{msg}: not the same tables")
        for section in expected:
            if expected[section] != actual[section]:
                e, a = expected[section].splitlines(), actual[section].splitlines()
                diff = []
                for i, (x, y) in enumerate(zip(e, a)):
                    if x != y:
                        at = next(j for j in range(min(len(x), len(y)) + 1) if x[j:j + 1] != y[j:j + 1])
                        diff.append(f"line {i + 1}, from character {at}:\n- {x[max(0, at - 40):at + 80]}\n"
                                    f"+ {y[max(0, at - 40):at + 80]}")
                        if len(diff) == 3:
                            break
                if not diff:
                    x, y = expected[section], actual[section]
                    at = next(j for j in range(min(len(x), len(y)) + 1) if x[j:j + 1] != y[j:j + 1])
                    diff.append(f"from character {at} of {len(x)}/{len(y)}: {x[max(0, at - 40):at + 80]!r} / "
                                f"{y[max(0, at - 40):at + 80]!r}")
                self.fail(f"{msg}: {section} differ ({len(e)} lines expected, {len(a)} found):\n" + "\n".join(diff))

    def counts(self):
        """The rows of every table, named as the manifests name them."""
        tables = SERVER.psql(self.db, """SELECT c.oid::regclass FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'""").splitlines()
        sql = " UNION ALL ".join(f"SELECT {sql_literal('public.' + t)}, count(*) FROM ONLY {t}" for t in tables)
        return {t: int(n) for t, n in (line.rsplit("|", 1) for line in SERVER.psql(self.db, sql).splitlines())}

    # --- The script ---------------------------------------------------------------------------

    def pgb(self, *args, dsn=None, env=None):
        e = SERVER.env()
        e["RELSTORAGE_DSN"] = SERVER.dsn(self.db) if dsn is None else dsn
        if dsn == "":
            del e["RELSTORAGE_DSN"]
        e.update(env or {})
        return subprocess.run(["sh", SCRIPT, *args], env=e, capture_output=True, text=True, errors="replace",
                              timeout=120)

    def ok(self, p, what):
        self.assertEqual(p.returncode, 0, f"{what} failed:\n{p.stderr}")
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 1, f"{what}: one JSON line expected on stdout, got {p.stdout!r}")
        return json.loads(lines[0])

    def failed(self, p, steps, what):
        self.assertEqual(p.returncode, 1, f"{what}: exit 1 expected, got {p.returncode}:\n{p.stderr}")
        last = p.stderr.rstrip("\n").splitlines()[-1]
        self.assertRegex(last, rf"^pg_backup: FAILED: ({steps}): .+", f"{what}: the last line of stderr")
        self.assertEqual(p.stdout, "", f"{what}: nothing on stdout")
        return last

    def backup(self, bid):
        return self.ok(self.pgb("backup", "--repo", self.repo, "--id", bid), f"backup {bid}")

    def restore(self, bid):
        return self.ok(self.pgb("restore", "--repo", self.repo, "--id", bid), f"restore {bid}")

    def files(self):
        return sorted(os.listdir(self.pgdir)) if os.path.isdir(self.pgdir) else []

    def befores(self):
        return [f for f in self.files() if f.startswith("before-restore-") and f.endswith(".dump")]

    def assertNoLeftovers(self):
        left = [f for f in self.files() if f.startswith(".") and f != ".lock"]
        self.assertEqual(left, [], "work files or partial dumps left in the repository")

    # --- Tests --------------------------------------------------------------------------------

    def test_backup_change_backup_restore_each_exactly(self):
        s1 = self.snapshot()
        self.assertEqual(len(s1["rows of object_state"].splitlines()), 399, "the test data")
        self.assertEqual(len(s1["large objects"].splitlines()), 12, "the test data")
        r1 = self.backup("b1")
        dump1 = os.path.join(self.pgdir, "b1.dump")
        self.assertEqual(sorted(r1), ["id", "location", "size", "time"])
        self.assertEqual(r1["id"], "b1")
        self.assertEqual(r1["location"], dump1)
        self.assertEqual(r1["size"], os.path.getsize(dump1))
        self.assertRegex(r1["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        t = time.mktime(time.strptime(r1["time"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertLess(abs(time.time() - t), 120, "time: now, in UTC")
        manifest = json.loads(Path(self.pgdir, "b1.json").read_text())
        self.assertEqual(manifest["rows"]["public.object_state"], 399)
        self.assertEqual(manifest["rows"]['public."Odd ""Name"" x"'], 2)
        self.assertEqual(manifest["rows"]["public.pack_object"], 0)
        self.assertEqual(manifest["large_objects"], 12)
        self.assertEqual(manifest["database"], self.db)

        self.change()
        s2 = self.snapshot()
        self.assertNotEqual(s1["rows of object_state"], s2["rows of object_state"], "the change")
        self.assertNotEqual(s1["large objects"], s2["large objects"], "the change")
        self.assertNotEqual(s1["sequences"], s2["sequences"], "the change")

        # Again with the same ID: nothing done, the same line.
        digest = hashlib.sha256(Path(dump1).read_bytes()).hexdigest()
        self.assertEqual(self.backup("b1"), r1, "backup of an existing ID")
        self.assertEqual(hashlib.sha256(Path(dump1).read_bytes()).hexdigest(), digest, "b1.dump rewritten")

        self.backup("b2")
        out = self.restore("b1")
        self.assertEqual(sorted(out), ["before", "id"])
        self.assertEqual(out["id"], "b1")
        before1 = out["before"]
        self.assertRegex(os.path.basename(before1), r"^before-restore-\d{8}T\d{6}Z(-\d+)?\.dump$")
        self.assertTrue(os.path.isfile(before1), "the before-restore dump")
        self.assertSameDatabase(s1, "after restoring b1")

        before2 = self.restore("b2")["before"]
        self.assertNotEqual(before1, before2)
        self.assertSameDatabase(s2, "after restoring b2")

        # The dumps of the database as it was before each restore give it back.
        self.restore(os.path.basename(before2)[:-5])
        self.assertSameDatabase(s1, "after restoring the dump taken before restoring b2")
        self.restore(os.path.basename(before1)[:-5])
        self.assertSameDatabase(s2, "after restoring the dump taken before restoring b1")
        self.assertTrue(os.path.isfile(before1) and os.path.isfile(before2), "restore deleted a before-restore dump")
        self.assertEqual(len(self.befores()), 4)
        self.assertNoLeftovers()

    def test_restore_of_a_corrupted_dump_changes_nothing(self):
        self.backup("b1")
        self.change()
        s = self.snapshot()
        dump = Path(self.pgdir, "b1.dump").read_bytes()
        manifest = Path(self.pgdir, "b1.json").read_text()
        middle = len(dump) // 2
        bad = {
            "truncated": dump[:middle],
            "flipped": dump[:middle] + bytes(b ^ 0xFF for b in dump[middle:middle + 64]) + dump[middle + 64:],
            "garbage": os.urandom(len(dump)),
            "empty": b"",
        }
        for name, content in bad.items():
            with self.subTest(name):
                Path(self.pgdir, f"{name}.dump").write_bytes(content)
                Path(self.pgdir, f"{name}.json").write_text(manifest)
                befores = self.befores()
                p = self.pgb("restore", "--repo", self.repo, "--id", name)
                self.failed(p, "read dump|restore|verify", f"restore of a {name} dump")
                self.assertSameDatabase(s, f"after the failed restore of a {name} dump")
                # When it got as far as saving the database, that dump holds it as it is.
                for new in sorted(set(self.befores()) - set(befores)):
                    self.assertEqual(json.loads(Path(self.pgdir, new[:-5] + ".json").read_text())["rows"],
                                     self.counts(), new)
        self.assertNoLeftovers()

    def test_a_failure_at_the_end_of_the_restore_rolls_all_of_it_back(self):
        self.backup("b1")
        self.change()
        s = self.snapshot()
        # Everything restored, then the last check fails: the transaction is not committed.
        p = self.pgb("restore", "--repo", self.repo, "--id", "b1", env={"PG_BACKUP_INJECT_FAILURE": "verify"})
        self.failed(p, "verify", "restore with a failing check")
        self.assertSameDatabase(s, "after a restore whose last check failed")
        # A dump whose rows are not the ones its backup recorded.
        meta = os.path.join(self.pgdir, "b1.json")
        text = Path(meta).read_text()
        self.assertIn('"public.object_state": 399,', text)
        Path(meta).write_text(text.replace('"public.object_state": 399,', '"public.object_state": 398,'))
        p = self.pgb("restore", "--repo", self.repo, "--id", "b1")
        self.assertIn("differs from what the backup recorded", self.failed(p, "verify", "restore of a changed backup"))
        self.assertSameDatabase(s, "after the restore of a backup whose dump is not what it recorded")
        self.assertNoLeftovers()

    def test_restore_is_refused_while_the_database_is_in_use(self):
        self.backup("b1")
        self.change()
        s = self.snapshot()
        env = SERVER.env()
        env["PGPASSWORD"] = PASSWORD
        session = subprocess.Popen([os.path.join(BIN, "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1",
                                    "-p", str(SERVER.port), "-U", ROLE, "-d", self.db],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        try:
            session.stdin.write("SELECT 'connected';\n")
            session.stdin.flush()
            self.assertEqual(session.stdout.readline().strip(), "connected")
            p = self.pgb("restore", "--repo", self.repo, "--id", "b1", env={"PG_BACKUP_IN_USE_WAIT": "1"})
            self.assertIn("in use", self.failed(p, "restore", "restore while a site is connected"))
        finally:
            session.stdin.close()
            session.wait(timeout=30)
            session.stdout.close()
        self.assertEqual(self.befores(), [], "a before-restore dump for a refused restore")
        self.assertSameDatabase(s, "after the refused restore")
        self.restore("b1")

    def test_tables_the_backup_does_not_have_are_named(self):
        s1 = self.snapshot()
        self.backup("b1")
        self.as_owner("CREATE TABLE later_t (a int); INSERT INTO later_t VALUES (1), (2);")
        p = self.pgb("restore", "--repo", self.repo, "--id", "b1")
        self.ok(p, "restore")
        self.assertIn("pg_backup: table public.later_t is not in the backup: left as it is", p.stderr)
        self.assertEqual(SERVER.psql(self.db, "SELECT count(*) FROM later_t").strip(), "2")
        self.as_owner("DROP TABLE later_t")
        self.assertSameDatabase(s1, "after restoring b1 (and dropping the table it does not have)")

    def test_prune_keeps_what_it_is_asked_to_and_the_before_restore_dumps(self):
        for bid in ("b1", "b2", "b3"):
            self.backup(bid)
        self.restore("b2")
        befores = self.befores()
        self.assertEqual(len(befores), 1)
        everything = self.files()

        # None of the kept backups exists: refused, nothing deleted.
        p = self.pgb("prune", "--repo", self.repo, "--keep", "gone", "--keep", "b4")
        self.failed(p, "prune", "prune keeping nothing that exists")
        self.assertEqual(self.files(), everything, "prune deleted files while refusing")

        p = self.pgb("prune", "--repo", self.repo, "--keep", "b2", "--keep", "nope", "--keep", "b2")
        out = self.ok(p, "prune")
        self.assertEqual(out, {"kept": ["b2"], "unknown": ["nope"], "deleted": ["b1", "b3"]})
        self.assertIn("nope", p.stderr)
        self.assertEqual([f for f in self.files() if not f.startswith(".")],
                         sorted(["b2.dump", "b2.json"] + befores + [b[:-5] + ".json" for b in befores]))
        # What is left restores.
        self.restore("b2")
        self.restore(befores[0][:-5])

    def test_bad_arguments_exit_2_and_touch_nothing(self):
        r = self.repo
        cases = [
            [],
            ["frobnicate"],
            ["backup"],
            ["backup", "--repo", r],
            ["backup", "--id", "b1"],
            ["backup", "--repo"],
            ["backup", "--repo", r, "--id", "../b1"],
            ["backup", "--repo", r, "--id", ".b1"],
            ["backup", "--repo", r, "--id", "b 1"],
            ["backup", "--repo", r, "--id", ""],
            ["backup", "--repo", r, "--id", "before-restore-20250101T000000Z"],
            ["backup", "--repo", r, "--id", "b1", "--bogus"],
            ["backup", "--repo", r, "--id", "b1", "extra"],
            ["backup", "--repo", r, "--id", "b1", "--id", "b2"],
            ["backup", "--repo", r, "--id", "b1", "--keep", "b2"],
            ["restore", "--repo", r],
            ["restore", "--id", "b1"],
            ["prune", "--repo", r],
            ["prune", "--repo", r, "--id", "b1"],
            ["prune", "--repo", r, "--keep", "../x"],
        ]
        for args in cases:
            with self.subTest(args=args):
                p = self.pgb(*args)
                self.assertEqual(p.returncode, 2, f"{args}: {p.stderr}")
                self.assertIn("pg_backup: usage: ", p.stderr)
                self.assertEqual(p.stdout, "")
        p = self.pgb("backup", "--repo", r, "--id", "b1", dsn="")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("RELSTORAGE_DSN", p.stderr)
        self.assertEqual(self.files(), [], "bad arguments wrote into the repository")
        # Well formed, but no such backup: a failure, not a usage error.
        self.failed(self.pgb("restore", "--repo", r, "--id", "b9"), "restore", "restore of a missing backup")
        self.assertEqual(self.files(), [])

    def test_a_wrong_password_fails_without_showing_it(self):
        def assertHidden(p, what, secret):
            for form in {secret, dsn_quote(secret), secret.replace("\\", "\\\\")}:
                self.assertNotIn(form, p.stdout + p.stderr, f"{what}: the password is in the output")

        wrong = SERVER.dsn(self.db, WRONG_PASSWORD)
        p = self.pgb("backup", "--repo", self.repo, "--id", "b1", dsn=wrong)
        self.assertIn("password authentication failed", self.failed(p, "pg_dump", "backup with a wrong password"))
        assertHidden(p, "backup", WRONG_PASSWORD)
        self.assertEqual([f for f in self.files() if f != ".lock"], [], "files left by a failed backup")

        self.backup("b1")
        self.change()
        s = self.snapshot()
        p = self.pgb("restore", "--repo", self.repo, "--id", "b1", dsn=wrong)
        self.failed(p, "connect", "restore with a wrong password")
        assertHidden(p, "restore", WRONG_PASSWORD)
        self.assertEqual(self.befores(), [])
        self.assertSameDatabase(s, "after a restore with a wrong password")

        # The URI form.
        uri = (f"postgresql://{ROLE}:{WRONG_PASSWORD.replace('%', '%25').replace(' ', '%20')}"
               f"@127.0.0.1:{SERVER.port}/{self.db}").replace("'", "%27").replace("$", "%24").replace("\\", "%5C")
        p = self.pgb("backup", "--repo", self.repo, "--id", "b2", dsn=uri)
        self.failed(p, "pg_dump", "backup with a wrong password in a URI")
        assertHidden(p, "backup (URI)", WRONG_PASSWORD)
        self.assertNotIn(uri.split(":")[2].split("@")[0], p.stderr)

        # Messages that quote the DSN's values (here: the right password, also taken as the
        # database's name) have it replaced.
        p = self.pgb("backup", "--repo", self.repo, "--id", "b2",
                     dsn=f"host=127.0.0.1 port={SERVER.port} dbname={dsn_quote(PASSWORD)} "
                         f"user={ROLE} password={dsn_quote(PASSWORD)}")
        last = self.failed(p, "pg_dump", "backup of a database that does not exist")
        self.assertIn('database "***" does not exist', last)
        assertHidden(p, "backup", PASSWORD)
        self.assertNoLeftovers()


if __name__ == "__main__":
    unittest.main()
