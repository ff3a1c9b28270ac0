"""reindex_solr.py (crates/model/scripts), run for real against a real Solr.

One test bed for the whole module: a local SolrCloud (tests/solr/run.sh, on free loopback ports,
with a temporary data directory and a random admin password), the Plone configset uploaded and
collections made from it with the Collections API, and a Zope instance (mkwsgiinstance,
FileStorage with blobs) holding two sites made by create_site.py: `Plone`, with the
collective.solr add-on installed but inactive (as a site is before its first index exists) and a
few documents, and `Other`, without the add-on. The script runs through `zconsole run`, exactly
as the Job calls it, with the COLLECTIVE_SOLR_* variables naming the collection to fill; what
it did is read back from Solr over HTTP as the admin, and from the database by probe scripts.

Solr starts in the background while the Zope instance and its sites are built, so the two
start-ups overlap.
"""

import base64
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from test_scripts import BIN, CREATE_SITE, SCRIPTS, Instance, last_line

REPO = Path(__file__).resolve().parents[2]
REINDEX_SOLR = SCRIPTS / "reindex_solr.py"
SOLR_RUN = REPO / "tests" / "solr" / "run.sh"
CONFIGSET = REPO / "operators" / "solr-index" / "configsets" / "plone"

SITE_ID = "Plone"
OTHER_SITE = "Other"  # a site without collective.solr
LANGUAGE = "fr"
# The site's collective.solr registry records the tests check (collective.solr.<name>).
SETTINGS = ("active", "base", "host", "port", "solr_login")
SOLR_READY_TIMEOUT = 120
# Content of the site: id -> (portal type, title, parent id or None). The titles' last words
# are unique, to find each document by a word.
CONTENT = {
    "alpha": ("Document", "Délibération alphaquartz", None),
    "beta": ("Document", "Travaux betaxylophone", None),
    "dossier": ("Folder", "Dossier", None),
    "gamma": ("Document", "Règlement gammaquokka", "dossier"),
}


def free_solr_port() -> int:
    """A free port P of 127.0.0.1 whose P+1000 (ZooKeeper's) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 1000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1000))
        except OSError:
            continue
        return port
    raise AssertionError("no free pair of ports for Solr and ZooKeeper")


def unused_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Solr:
    """The admin's view of the local Solr, over HTTP."""

    def __init__(self, port: int, password: str):
        self.port = port
        self.password = password
        self.url = f"http://127.0.0.1:{port}/solr"

    def call(self, path, data=None, content_type="application/json", user="admin",
             password=None):
        credentials = f"{user}:{password or self.password}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def ok(self, path, data=None, content_type="application/json"):
        status, body = self.call(path, data, content_type)
        assert status == 200, f"{path}: HTTP {status}: {body[:600]!r}"
        assert "errorMessages" not in body, body
        return body

    def upload_configset(self, name, files):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            for path, content in sorted(files.items()):
                z.writestr(path, content)
        self.ok(f"/admin/configs?action=UPLOAD&name={name}&wt=json", buffer.getvalue(),
                "application/octet-stream")

    def create_collection(self, name, configset):
        self.ok(f"/admin/collections?action=CREATE&name={name}&numShards=1"
                f"&replicationFactor=1&collection.configName={configset}&wt=json")

    def create_alias(self, name, collection):
        self.ok(f"/admin/collections?action=CREATEALIAS&name={name}&collections={collection}"
                "&wt=json")

    def add(self, collection, docs):
        self.ok(f"/{collection}/update?commit=true&wt=json", json.dumps(docs).encode())

    def select(self, collection, q="*:*", rows=1000, fl="UID"):
        query = urllib.parse.urlencode({"q": q, "rows": rows, "fl": fl, "wt": "json"})
        return self.ok(f"/{collection}/select?{query}")["response"]

    def uids(self, collection, q="*:*"):
        return sorted(d["UID"] for d in self.select(collection, q)["docs"])


def configset_files(directory: Path) -> dict:
    """A configset directory's files, by path relative to it."""
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def collective_solr_can_read(files: dict) -> str:
    """Why collective.solr cannot use a configset, or "" when it can: it fetches
    `schema.xml` (/admin/file/?file=schema.xml) and parses it in one pass, so every
    <fieldType> must come before the <field> elements that use it."""
    from collective.solr.parser import SolrSchema

    if "schema.xml" not in files:
        return f"no schema.xml among {sorted(files)}"
    try:
        schema = SolrSchema(files["schema.xml"].decode())
    except KeyError as e:
        return f"schema.xml uses field type {e} before defining it"
    return "" if schema.get("uniqueKey") == "UID" else "schema.xml has no uniqueKey UID"


SHIPPED = configset_files(CONFIGSET)


class Bed:
    """What the tests share: the Zope instance with its sites, and Solr."""

    def __init__(self, instance: Instance, solr: Solr, uids: dict, settings: dict):
        self.instance = instance
        self.solr = solr
        self.uids = uids  # content id -> UID, plus "": the site root's UID
        self.settings = settings  # the site's collective.solr settings once installed

    def reindex(self, base: str, *args: str, port=None, password=None, env=None):
        """Runs the script as the Job does, pointed at `base` (e.g. /solr/t.site_v2)."""
        saved = dict(self.instance.env)
        self.instance.env.update({
            "COLLECTIVE_SOLR_HOST": "127.0.0.1",
            "COLLECTIVE_SOLR_PORT": str(port or self.solr.port),
            "COLLECTIVE_SOLR_BASE": base,
            "COLLECTIVE_SOLR_LOGIN": "admin",
            "COLLECTIVE_SOLR_PASSWORD": password or self.solr.password,
        })
        self.instance.env.update(env or {})
        try:
            return self.instance.zconsole(REINDEX_SOLR, *(args or (SITE_ID,)))
        finally:
            self.instance.env = saved

    def solr_settings(self):
        """The site's collective.solr registry records, read from the database."""
        return self.instance.probe(
            f"SETTINGS = {SETTINGS!r}\n" + textwrap.dedent("""
            site = app[args[0]]
            setSite(site)
            registry = site.portal_registry
            result = {k: registry["collective.solr." + k] for k in SETTINGS}
            """),
            SITE_ID,
        )


def start_solr(data: Path):
    port = free_solr_port()
    password = secrets.token_urlsafe(18)
    env = dict(os.environ, SOLR_ADMIN_PASSWORD=password)
    env.pop("SOLR_ADMIN_PASSWORD_FILE", None)
    env.pop("SOLR_NODES", None)
    out = data / "solr.out"
    with out.open("w") as log:
        proc = subprocess.Popen([str(SOLR_RUN), str(data / "data"), str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
    return proc, Solr(port, password), out


def wait_ready(proc, out: Path):
    deadline = time.monotonic() + SOLR_READY_TIMEOUT
    while "SOLR READY" not in out.read_text():
        assert proc.poll() is None, (
            f"Solr exited with {proc.returncode}:\n{out.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"Solr not ready:\n{out.read_text()[-3000:]}"
        time.sleep(0.1)


def stop_solr(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    solr_dir = tmp_path_factory.mktemp("solr")
    proc, solr, out = start_solr(solr_dir)
    try:
        # --- meanwhile, the Zope instance and its sites
        home = tmp_path_factory.mktemp("zope") / "instance"
        subprocess.run(
            [str(BIN / "mkwsgiinstance"), "-d", str(home), "-u", "admin:admin-secret"],
            check=True, capture_output=True, text=True,
        )
        instance = Instance(home)
        conf = instance.conf.read_text()
        default = "path $INSTANCE/var/Data.fs"
        assert default in conf, "mkwsgiinstance's zope.conf changed; adapt this fixture"
        instance.conf.write_text(conf.replace(
            default,
            "path $INSTANCE/var/filestorage/Data.fs\n"
            "     blob-dir $INSTANCE/var/blobstorage",
        ))
        (home / "var" / "filestorage").mkdir(parents=True)
        (home / "var" / "blobstorage").mkdir(parents=True)
        done = instance.zconsole(CREATE_SITE, SITE_ID, f"Site {SITE_ID}", LANGUAGE)
        assert done.returncode == 0, done.stderr[-3000:]
        # collective.solr installed (inactive), the content; the other site made the way
        # create_site.py does, in the same run (a Zope start-up less).
        made = instance.probe(
            f"SETTINGS = {SETTINGS!r}\n" + textwrap.dedent("""
            import plone.api
            from plone.base.utils import get_installer
            from plone.distribution.api import site as site_api
            site = app[args[0]]
            setSite(site)
            get_installer(site, site.REQUEST).install_product("collective.solr")
            registry = site.portal_registry
            settings = {k: registry["collective.solr." + k] for k in SETTINGS}
            content = json.loads(args[1])
            uids = {"": site.UID()}
            for id_, (type_, title, parent) in content.items():
                container = site[parent] if parent else site
                obj = plone.api.content.create(container=container, type=type_, id=id_,
                                               title=title)
                uids[id_] = obj.UID()
            transaction.commit()
            setSite(None)
            site_api.create(app, "classic", {"site_id": args[2], "title": args[2],
                                             "default_language": "fr",
                                             "setup_content": False})
            result = {"uids": uids, "settings": settings}
            """),
            SITE_ID, json.dumps(CONTENT), OTHER_SITE,
        )
        # --- Solr: the configset and the collections
        wait_ready(proc, out)
        solr.upload_configset("t.plone", dict(SHIPPED))
        for name in ("t.site_v1", "t.site_v2"):
            solr.create_collection(name, "t.plone")
        yield Bed(instance, solr, made["uids"], made["settings"])
    finally:
        stop_solr(proc)


def catalog_uids(bed):
    """The UIDs of everything the site's catalog holds (an empty query finds nothing)."""
    return bed.instance.probe(
        """
        site = app[args[0]]
        setSite(site)
        catalog = site.portal_catalog
        result = sorted(b.UID for b in catalog.unrestrictedSearchResults(path="/" + args[0]))
        """,
        SITE_ID,
    )


# --- a successful reindex ------------------------------------------------------------------


def test_reindex_fills_the_collection_with_every_indexable_object(bed):
    done = bed.reindex("/solr/t.site_v2")
    assert done.returncode == 0, done.stderr[-3000:]
    # What the site's catalog holds (the site root included, in Plone 6).
    expected = catalog_uids(bed)
    assert sorted(bed.uids.values()) == expected
    assert last_line(done.stdout) == (
        f"reindex_solr: site {SITE_ID!r}: {len(expected)} documents indexed into /solr/t.site_v2")
    assert bed.solr.uids("t.site_v2") == expected
    # Found by a word of the title, and by full text (SearchableText, the default field).
    assert bed.solr.uids("t.site_v2", "Title:alphaquartz") == [bed.uids["alpha"]]
    assert bed.solr.uids("t.site_v2", "gammaquokka") == [bed.uids["gamma"]]
    # Nothing went to the other collection.
    assert bed.solr.uids("t.site_v1") == []


def test_reindex_clears_stale_documents_and_gives_the_same_result_again(bed):
    # A document the site does not have (e.g. left by an earlier, failed attempt).
    bed.solr.add("t.site_v2", [{"UID": "stale-0001", "Title": "stale leftover",
                                "portal_type": "Document"}])
    assert "stale-0001" in bed.solr.uids("t.site_v2")

    again = bed.reindex("/solr/t.site_v2")  # after the first test, a second run
    assert again.returncode == 0, again.stderr[-3000:]
    assert bed.solr.uids("t.site_v2") == sorted(bed.uids.values())
    assert last_line(again.stdout) == (
        f"reindex_solr: site {SITE_ID!r}: {len(bed.uids)} documents indexed into /solr/t.site_v2")


def test_reindex_commits_nothing_to_the_database(bed):
    assert bed.settings == {"active": False, "base": "/solr/plone", "host": "127.0.0.1",
                            "port": 8983, "solr_login": None}
    size = bed.instance.data_fs.stat().st_size
    done = bed.reindex("/solr/t.site_v2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "active for this process only" in done.stdout
    # A FileStorage grows with every committed transaction.
    assert bed.instance.data_fs.stat().st_size == size
    assert bed.solr_settings() == bed.settings


def test_reindex_through_an_alias_fills_the_collection_behind_it(bed):
    bed.solr.create_alias("t.site", "t.site_v1")
    done = bed.reindex("/solr/t.site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_line(done.stdout).endswith("documents indexed into /solr/t.site")
    assert bed.solr.uids("t.site_v1") == bed.solr.uids("t.site_v2") != []


def test_catch_up_indexes_what_the_collection_misses_and_removes_what_the_site_lost(bed):
    # A freshly reindexed collection, then what the site changed while the alias still
    # pointed at the previous one: a page it added (missing here), a page it deleted (still
    # here), a page whose text changed within the same minute (here in its older version).
    bed.solr.create_collection("t.site_v3", "t.plone")
    done = bed.reindex("/solr/t.site_v3")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = catalog_uids(bed)
    bed.solr.ok("/t.site_v3/update?commit=true&wt=json",
                json.dumps({"delete": {"id": bed.uids["alpha"]}}).encode())
    bed.solr.add("t.site_v3", [{"UID": "gone-0001", "Title": "deleted meanwhile",
                                "portal_type": "Document", "modified": "2020-01-01T00:00:00Z"}])
    assert bed.uids["alpha"] not in bed.solr.uids("t.site_v3")
    old = bed.solr.select("t.site_v3", f'UID:"{bed.uids["gamma"]}"', fl="*")["docs"][0]
    old.pop("_version_", None)
    bed.solr.add("t.site_v3", [dict(old, Title="older title", SearchableText="olderword")])
    assert bed.solr.uids("t.site_v3", "olderword") == [bed.uids["gamma"]]
    size = bed.instance.data_fs.stat().st_size

    caught = bed.reindex("/solr/t.site_v3", SITE_ID, "--catch-up")
    assert caught.returncode == 0, caught.stderr[-3000:]
    # Every object sent again (none missed, however recent its change), the stale one removed.
    assert last_line(caught.stdout) == (
        f"reindex_solr: site {SITE_ID!r}: caught up /solr/t.site_v3: {len(expected)} documents "
        "sent, 1 removed")
    assert bed.solr.uids("t.site_v3") == expected
    assert bed.solr.uids("t.site_v3", "Title:alphaquartz") == [bed.uids["alpha"]]
    assert bed.solr.uids("t.site_v3", "olderword") == []
    assert bed.solr.uids("t.site_v3", "gammaquokka") == [bed.uids["gamma"]]
    # Nothing committed to the database.
    assert bed.instance.data_fs.stat().st_size == size
    # In line already: nothing to remove.
    again = bed.reindex("/solr/t.site_v3", SITE_ID, "--catch-up")
    assert again.returncode == 0, again.stderr[-3000:]
    assert last_line(again.stdout).endswith(
        f"caught up /solr/t.site_v3: {len(expected)} documents sent, 0 removed")
    assert bed.solr.uids("t.site_v3") == expected


def test_catch_up_never_removes_a_page_the_live_site_is_committing(bed):
    # The live site sends a page to Solr while its transaction commits, before the database
    # says so: a document that reaches the collection during the catch-up, and that neither
    # the collection held at its start nor the catch-up sent, is left alone. One that the
    # collection held at the start and the site does not have is removed.
    bed.solr.create_collection("t.site_v4", "t.plone")
    done = bed.reindex("/solr/t.site_v4")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = catalog_uids(bed)
    bed.solr.add("t.site_v4", [{"UID": "gone-0002", "Title": "deleted before",
                                "portal_type": "Document", "modified": "2020-01-01T00:00:00Z"}])
    saved = dict(bed.instance.env)
    bed.instance.env.update({
        "COLLECTIVE_SOLR_HOST": "127.0.0.1",
        "COLLECTIVE_SOLR_PORT": str(bed.solr.port),
        "COLLECTIVE_SOLR_BASE": "/solr/t.site_v4",
        "COLLECTIVE_SOLR_LOGIN": "admin",
        "COLLECTIVE_SOLR_PASSWORD": bed.solr.password,
    })
    try:
        proc = subprocess.Popen(
            [str(BIN / "zconsole"), "run", str(bed.instance.conf), str(REINDEX_SOLR), SITE_ID,
             "--catch-up"],
            cwd=bed.instance.home, env=bed.instance.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
    finally:
        bed.instance.env = saved
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "before the catch-up" in line:
                break
        assert lines and lines[-1].rstrip().endswith(
            f"/solr/t.site_v4 holds {len(expected) + 1} documents before the catch-up"), lines
        bed.solr.add("t.site_v4", [{"UID": "committing-0001", "Title": "being committed",
                                    "portal_type": "Document",
                                    "modified": "2020-01-01T00:00:00Z"}])
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert last_line(out) == (
        f"reindex_solr: site {SITE_ID!r}: caught up /solr/t.site_v4: {len(expected)} documents "
        "sent, 1 removed")
    assert bed.solr.uids("t.site_v4") == sorted(expected + ["committing-0001"])


def test_collective_solr_reads_the_shipped_configset():
    assert collective_solr_can_read(SHIPPED) == ""
    # Stored, so that collective.solr's partial updates (e.g. review_state after a workflow
    # change), which Solr rebuilds from the stored fields, keep the text searchable.
    assert '<field name="SearchableText" type="text" indexed="true" stored="true"/>' in \
        SHIPPED["schema.xml"].decode()


def test_reindex_works_with_the_shipped_configset_as_it_is(bed):
    bed.solr.upload_configset("t.shipped", SHIPPED)
    bed.solr.create_collection("t.shipped_v1", "t.shipped")
    done = bed.reindex("/solr/t.shipped_v1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert bed.solr.uids("t.shipped_v1") == bed.solr.uids("t.site_v2") != []


# --- failures -------------------------------------------------------------------------------


def test_reindex_fails_clearly_when_solr_is_down(bed):
    port = unused_port()
    failed = bed.reindex("/solr/t.site_v2", port=port)
    assert failed.returncode == 1
    message = last_line(failed.stderr)
    assert message.startswith("reindex_solr: FAILED: ")
    assert f"cannot connect to Solr at http://127.0.0.1:{port}/solr/t.site_v2" in message
    assert "COLLECTIVE_SOLR_HOST" in message


def test_reindex_fails_clearly_with_a_wrong_password(bed):
    failed = bed.reindex("/solr/t.site_v2", password="wrong-password")
    assert failed.returncode == 1
    message = last_line(failed.stderr)
    assert message.startswith("reindex_solr: FAILED: ")
    assert "HTTP 401" in message
    assert f"{bed.solr.url}/t.site_v2 as user 'admin'" in message
    assert "COLLECTIVE_SOLR_PASSWORD" in message


def test_reindex_fails_clearly_when_solr_refuses_the_documents(bed):
    # A schema where review_state is a number: Solr refuses every document (HTTP 400), which
    # collective.solr alone would only log.
    files = dict(SHIPPED)
    schema = files["schema.xml"].decode()
    field = '<field name="review_state" type="string"'
    assert field in schema
    files["schema.xml"] = schema.replace(field, '<field name="review_state" type="pint"').encode()
    bed.solr.upload_configset("t.numeric-state", files)
    bed.solr.create_collection("t.refusing_v1", "t.numeric-state")
    failed = bed.reindex("/solr/t.refusing_v1")
    assert failed.returncode == 1
    message = last_line(failed.stderr)
    assert message.startswith(
        f"reindex_solr: FAILED: reindexing the site into {bed.solr.url}/t.refusing_v1: "
        "Solr rejected the request (HTTP 400)")
    assert "review_state" in message
    assert "documents indexed" not in failed.stdout


def test_reindex_fails_clearly_for_a_missing_collection(bed):
    failed = bed.reindex("/solr/t.nope_v1")
    assert failed.returncode == 1
    message = last_line(failed.stderr)
    assert "HTTP 404" in message and f"{bed.solr.url}/t.nope_v1" in message
    assert "collection or alias 't.nope_v1' exists" in message


def test_reindex_refuses_a_site_without_collective_solr(bed):
    failed = bed.reindex("/solr/t.site_v2", OTHER_SITE)
    assert failed.returncode == 1
    message = last_line(failed.stderr)
    assert message.startswith(
        f"reindex_solr: FAILED: the collective.solr add-on is not installed in site "
        f"{OTHER_SITE!r}")
    assert "install the collective.solr add-on in the site" in message


def test_reindex_fails_clearly_for_a_missing_site(bed):
    failed = bed.reindex("/solr/t.site_v2", "no-such-site")
    assert failed.returncode == 1
    assert last_line(failed.stderr) == (
        "reindex_solr: FAILED: no site 'no-such-site' in this database "
        f"(Plone sites here: {SITE_ID}, {OTHER_SITE})")


def test_reindex_needs_one_site_and_the_target_collection(bed):
    two = bed.reindex("/solr/t.site_v2", SITE_ID, "extra")
    assert two.returncode == 2, two.stderr[-3000:]
    assert "reindex_solr: expected 1 argument, got 2" in two.stderr
    assert last_line(two.stderr).startswith("usage: ")
    # Without COLLECTIVE_SOLR_* collective.solr would use the site's own (live) settings.
    env = {k: v for k, v in bed.instance.env.items() if not k.startswith("COLLECTIVE_SOLR_")}
    no_target = subprocess.run(
        [str(BIN / "zconsole"), "run", str(bed.instance.conf), str(REINDEX_SOLR), SITE_ID],
        cwd=bed.instance.home, env=env, capture_output=True, text=True, timeout=300)
    assert no_target.returncode == 2, no_target.stderr[-3000:]
    assert ("COLLECTIVE_SOLR_HOST, COLLECTIVE_SOLR_PORT, COLLECTIVE_SOLR_BASE not set"
            in no_target.stderr)
    assert last_line(no_target.stderr).startswith("usage: ")
