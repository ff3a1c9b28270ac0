"""Rebuild a Plone site's Solr index (collective.solr) in a new collection, from the database.

mutu's site operator runs this in a Job, in the image of the site's release, while the site keeps
serving (the Job is one more ZEO client of the site's database):

    zconsole run ZOPE_CONF reindex_solr.py SITE_ID [--catch-up]

with the collection to fill given the way collective.solr reads it, through the environment
(each variable overrides the site's registry record of the same name):

    COLLECTIVE_SOLR_HOST, COLLECTIVE_SOLR_PORT        Solr's host and port (required)
    COLLECTIVE_SOLR_BASE                              the collection's path (required), e.g.
                                                      /solr/site1_v2
    COLLECTIVE_SOLR_LOGIN, COLLECTIVE_SOLR_PASSWORD   Solr's basic auth user (optional)

That collection is not served yet: mutu moves the site's alias to it only when this script exits
0, so an empty or half-built collection is never searched.

zconsole leaves sys.argv as it was given (`zconsole run ZOPE_CONF SCRIPT ARGS...`), runs this
file with `exec` and binds `app` (the Zope root, with a request and the system user); there is no
`__file__`. So this script's own arguments are the ones after its path, normally sys.argv[4:].

Steps:
1. finds the site, and checks that the collective.solr add-on is installed in it (its profile
   `collective.solr:default`, hence its registry records);
2. makes collective.solr active for this process only: when the registry says inactive, the
   record is set in memory. Nothing is ever committed to the database: the transaction is doomed
   first (a commit would raise) and aborted at the end. The live instances share this database;
   a committed `active = True` (or anything else this process touched while reading the content)
   would change what they do, and this script has no business changing the site: it only writes
   to Solr;
3. reads the collection's schema (which also checks that Solr answers, with these credentials),
   then clears the collection (a collection reused from an earlier attempt keeps no stale
   document) and reindexes every indexable object of the site into it with collective.solr's own
   maintenance view (`@@solr-maintenance/reindex`), which ends with a hard commit in Solr;
4. counts the documents in the collection and compares with the number of distinct documents the
   reindex sent: they must be equal.

collective.solr itself logs and swallows the errors Solr returns while it sends documents; this
script makes them fatal (one connection's `flush` is replaced by one that raises), so a document
Solr refuses fails the run instead of silently missing from the new collection.

With --catch-up, the collection is not cleared, so that it keeps answering searches:
1. the unique keys the collection holds are read;
2. every indexable object is reindexed into it (what it misses is added, what it holds in
   another version is replaced), from this process's view of the database, which is as of its
   start;
3. at least SETTLE seconds after step 1, the database is read again as of now (a ZEO server is
   asked first, so every transaction committed before is seen), and what the site changed since
   this process started (its catalog's `modified`, with a margin) is sent again from there: a
   page the site edited meanwhile never stays in the version step 2 read;
4. what the collection held at step 1, or what step 2 sent, and the site no longer has is
   removed. Only those: a page the live site adds meanwhile reaches Solr while the site commits
   it, before the database says so, and is never removed (collective.solr sends a document
   when the transaction commits, not after; the settle time covers that commit).
collective.solr's own sync is not used: it compares
modification times to the minute, and misses a page changed twice within one minute. mutu runs
it into the alias right after moving the alias to a freshly reindexed collection (the changes
the site made while the reindex ran went to the previous collection), and after a Restore (the
collection still holds what the site had before). The live instances keep writing meanwhile,
so no count is compared; the last line is
`reindex_solr: site 'SITE_ID': caught up BASE: N documents sent, M removed`.

It prints collective.solr's progress lines and, on success, a last line
`reindex_solr: site 'SITE_ID': N documents indexed into BASE`.

Exit status: 0 the collection holds the site's N documents; 1 something failed (the last line on
stderr, `reindex_solr: FAILED: ...`, says what and what to check: the Solr URL, the collection,
the user); 2 bad arguments or environment.
"""

import json
import os
import re
import socket
import sys
import time
import traceback

import transaction

PROG = "reindex_solr"
USAGE = (
    "usage: COLLECTIVE_SOLR_HOST=... COLLECTIVE_SOLR_PORT=... "
    "COLLECTIVE_SOLR_BASE=/solr/COLLECTION "
    "[COLLECTIVE_SOLR_LOGIN=... COLLECTIVE_SOLR_PASSWORD=...] "
    "zconsole run ZOPE_CONF reindex_solr.py SITE_ID [--catch-up]"
)
CATCH_UP = "--catch-up"
PROFILE = "collective.solr:default"
ACTIVE = "collective.solr.active"
BATCH = 1000  # objects between two intermediate (soft) commits of the reindex
SETTLE = 5  # seconds at least between reading Solr's keys and the catalog (see --catch-up)
CHANGED_MARGIN = 180  # seconds before this process started: "changed meanwhile" (see --catch-up)
STARTED = time.time()  # about when zconsole opened the database: this process's view of it
CONNECT_TIMEOUT = 60  # seconds, for the first requests (a Solr that never answers)
ADD_ON_HINT = (
    "install the collective.solr add-on in the site (Site Setup > Add-ons, or import the "
    f"profile {PROFILE}), then run this again"
)


class UsageError(Exception):
    """Bad arguments: exit status 2."""


class Failure(Exception):
    """A failure whose message says it all: exit status 1, no traceback."""


def script_args():
    """This script's own arguments: those after its path on zconsole's command line."""
    me = sys._getframe().f_code.co_filename  # the path zconsole compiled this file with
    argv = sys.argv
    if len(argv) > 3 and argv[3] == me:
        return argv[4:]
    if me in argv:
        return argv[argv.index(me) + 1:]
    raise UsageError(f"cannot find this script's path {me!r} among the arguments {argv!r}")


class Target:
    """The collection to fill, from the COLLECTIVE_SOLR_* environment variables."""

    def __init__(self, environ):
        missing = [name for name in ("COLLECTIVE_SOLR_HOST", "COLLECTIVE_SOLR_PORT",
                                     "COLLECTIVE_SOLR_BASE") if not environ.get(name)]
        if missing:
            # Without them collective.solr would use the site's registry: the live collection.
            raise UsageError(
                f"{', '.join(missing)} not set: the collection to fill must be given through "
                "the environment (the site's own settings are never used)"
            )
        self.host = environ["COLLECTIVE_SOLR_HOST"]
        try:
            self.port = int(environ["COLLECTIVE_SOLR_PORT"])
        except ValueError:
            raise UsageError(
                f"COLLECTIVE_SOLR_PORT={environ['COLLECTIVE_SOLR_PORT']!r} is not a port number"
            ) from None
        self.base = environ["COLLECTIVE_SOLR_BASE"]
        if not self.base.startswith("/") or self.base.endswith("/"):
            raise UsageError(
                f"COLLECTIVE_SOLR_BASE={self.base!r}: expected a path like /solr/COLLECTION"
            )
        self.collection = self.base.rsplit("/", 1)[-1]
        self.login = environ.get("COLLECTIVE_SOLR_LOGIN") or None
        self.scheme = "http"

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}{self.base}"

    def user(self):
        return f"user {self.login!r}" if self.login else "no user (anonymous requests)"


def find_site(app, site_id):
    from plone.base.interfaces import IPloneSiteRoot

    if site_id not in app.objectIds():
        sites = [i for i in app.objectIds() if IPloneSiteRoot.providedBy(app[i])]
        raise Failure(
            f"no site {site_id!r} in this database (Plone sites here: "
            f"{', '.join(sites) if sites else 'none'})"
        )
    site = app[site_id]
    if not IPloneSiteRoot.providedBy(site):
        raise Failure(f"{site_id!r} is not a Plone site")
    return site


def solr_manager(site, site_id):
    """collective.solr's connection manager, once sure the add-on is installed in the site."""
    try:
        from collective.solr.interfaces import ISolrConnectionManager
    except ImportError as e:
        raise Failure(
            f"collective.solr is not in this image ({e}): add the collective.solr package to "
            f"the site's release, then {ADD_ON_HINT}"
        ) from None
    from plone.registry.interfaces import IRegistry
    from Products.GenericSetup.tool import UNKNOWN
    from zope.component import queryUtility

    installed = site.portal_setup.getLastVersionForProfile(PROFILE) != UNKNOWN
    registry = queryUtility(IRegistry)
    if not installed or registry is None or registry.get(ACTIVE, None) is None:
        raise Failure(
            f"the collective.solr add-on is not installed in site {site_id!r} (no profile "
            f"{PROFILE}, no {ACTIVE} record in its registry): {ADD_ON_HINT}"
        )
    manager = queryUtility(ISolrConnectionManager)
    if manager is None:
        raise Failure(
            "collective.solr's ZCML is not loaded in this Zope (no ISolrConnectionManager "
            "utility): include the collective.solr package in the instance's configuration"
        )
    return registry, manager


def solr_message(body):
    """Solr's own error message out of an error response (JSON or XML), or its start."""
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        msg = json.loads(body).get("error", {}).get("msg")
        if msg:
            return msg
    except (ValueError, AttributeError):
        pass
    found = re.search(r'<str name="msg">(.*?)</str>', body, re.S)
    if found:
        return re.sub(r"\s+", " ", found.group(1)).strip()
    found = re.search(r"<title>(.*?)</title>", body, re.S | re.I)  # Jetty's HTML error pages
    if found:
        return found.group(1).strip()
    return re.sub(r"\s+", " ", body).strip()[:300]


def describe(error, target):
    """What went wrong talking to Solr, and what to check, in one line."""
    from collective.solr.exceptions import SolrConnectionException

    where = f"{target.url} as {target.user()}"
    if isinstance(error, SolrConnectionException):
        code = str(error.httpcode)
        said = solr_message(error.body)
        said = f": {said}" if said else ""
        if code == "401":
            return (f"Solr refused the credentials (HTTP 401) at {where}{said}; check "
                    "COLLECTIVE_SOLR_LOGIN and COLLECTIVE_SOLR_PASSWORD")
        if code == "403":
            return (f"Solr forbids it (HTTP 403) at {where}{said}; check the user's Solr "
                    f"permissions on collection {target.collection!r}")
        if code == "404":
            if "schema.xml" in said:
                return (f"Solr has no schema.xml for {where} (HTTP 404){said}; collective.solr "
                        "reads the schema from the configset's schema.xml "
                        "(ClassicIndexSchemaFactory): check the collection's configset")
            return (f"not found (HTTP 404) at {where}{said}; check that the collection or "
                    f"alias {target.collection!r} exists (COLLECTIVE_SOLR_BASE={target.base})")
        if code == "400":
            return (f"Solr rejected the request (HTTP 400) at {where}{said}; the collection's "
                    "schema does not accept what collective.solr sends: check its configset")
        return f"Solr answered HTTP {code} {error.reason or ''} at {where}{said}".rstrip()
    if isinstance(error, (socket.timeout, TimeoutError)):
        return (f"no answer from Solr at {target.url} within {CONNECT_TIMEOUT} s; check "
                "COLLECTIVE_SOLR_HOST and COLLECTIVE_SOLR_PORT and that Solr is running")
    if isinstance(error, OSError):
        return (f"cannot connect to Solr at {target.url} ({type(error).__name__}: {error}); "
                "check COLLECTIVE_SOLR_HOST and COLLECTIVE_SOLR_PORT and that Solr is running")
    return None


class Progress:
    """Stands for the request of collective.solr's maintenance view: its RESPONSE.write gets
    the view's log (bytes); each line goes to stdout, except the one per indexed object."""

    def __init__(self):
        self.RESPONSE = self
        self.pending = ""

    def write(self, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self.pending += data
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.line(line)

    def line(self, line):
        text = line.split(" ", 1)[-1] if re.match(r"\d{4}/\d\d/\d\d-", line) else line
        if not text.strip() or text.startswith("indexing <"):
            return
        print(f"{PROG}: collective.solr: {text}", flush=True)

    def close(self):
        if self.pending:
            self.line(self.pending)
            self.pending = ""


class Reindex:
    """Clears the collection and reindexes the site into it, remembering the step for the
    error message."""

    def __init__(self, site, registry, manager, target):
        self.site = site
        self.registry = registry
        self.manager = manager
        self.target = target
        self.step = "connecting"
        self.sent = set()  # the unique keys of the documents sent to Solr

    def connection(self):
        target = self.target
        self.manager.closeConnection(clearSchema=True)
        conn = self.manager.getConnection()
        if conn is None:
            raise Failure("collective.solr is still inactive after activating it in memory")
        # A <solr:connection> in ZCML wins over the environment: refuse to write elsewhere.
        if conn.host != f"{target.host}:{target.port}" or conn.solrBase != target.base:
            raise Failure(
                f"collective.solr would write to {conn.host}{conn.solrBase}, not to the target "
                f"{target.host}:{target.port}{target.base} of COLLECTIVE_SOLR_*: a "
                "<solr:connection> in the ZCML overrides them; remove it from the image"
            )
        if conn.https_connection:
            target.scheme = "https"
        target.login = conn.login  # the user collective.solr really uses
        return conn

    def instrument(self, conn, key):
        """Errors from Solr raise instead of being logged, and sent documents are counted."""

        def flush():
            requests = list(conn.xmlbody)
            del conn.xmlbody[:]
            return [conn.doSendXML(request) for request in requests]

        add = conn.add

        def counting_add(*args, **fields):
            if fields.get(key) is not None:
                self.sent.add(fields[key])
            return add(*args, **fields)

        conn.flush = flush
        conn.add = counting_add

    def count(self, conn):
        response = conn.search(q="*:*", rows=0, wt="json")
        try:
            return int(json.loads(response.read())["response"]["numFound"])
        finally:
            response.close()

    def run(self, catch_up=False):
        from collective.solr.browser.maintenance import SolrMaintenanceView

        target = self.target
        conn = self.connection()
        doing = "catching up" if catch_up else "reindexing into"
        print(f"{PROG}: site {self.site.getId()!r}: {doing} {target.url} as "
              f"{target.user()}", flush=True)
        self.step = f"reading the schema of {target.url}"
        conn.setTimeout(CONNECT_TIMEOUT)
        try:
            schema = conn.get_schema()  # raises when Solr does not answer 200
        except KeyError as e:
            raise Failure(
                f"collective.solr cannot read the schema of {target.url}: field type {e} is "
                "used before it is defined (collective.solr needs every <fieldType> before the "
                "<field> elements that use it): check the collection's configset"
            ) from None
        key = schema.get("uniqueKey") if schema is not None else None
        if not key:
            raise Failure(f"the schema of {target.url} has no uniqueKey")
        # No timeout from now on, as collective.solr's reindex wants; the socket opened with
        # one is closed (the next request opens another).
        conn.setTimeout(None)
        conn.close()
        self.instrument(conn, key)
        view = SolrMaintenanceView(self.site, Progress())
        if catch_up:
            return self.catch_up(conn, view, key)
        self.step = f"clearing {target.url}"
        view.clear()
        self.step = f"reindexing the site into {target.url}"
        view.reindex(batch=BATCH)
        view.request.close()
        self.step = f"counting the documents in {target.url}"
        found = self.count(conn)
        if found != len(self.sent):
            raise Failure(
                f"{target.url} holds {found} documents after the reindex, but "
                f"{len(self.sent)} were sent: check Solr's log for {target.collection!r} "
                "(were documents refused, or written by someone else meanwhile?)"
            )
        return found

    def catch_up(self, conn, view, key):
        """Reindexes every object into the target without clearing it, sends again what the
        site changed meanwhile, then removes what the site no longer has (see --catch-up in the
        docstring); (documents sent, documents removed)."""
        target = self.target
        self.step = f"reading the unique keys in {target.url}"
        held = self.keys(conn, key)
        read_at = time.monotonic()
        print(f"{PROG}: {target.base} holds {len(held)} documents before the catch-up",
              flush=True)
        self.step = f"reindexing the site into {target.url}, without clearing it"
        view.reindex(batch=BATCH)
        view.request.close()
        self.step = "reading the database as of now"
        time.sleep(max(0.0, SETTLE - (time.monotonic() - read_at)))
        self.sync()
        catalog = self.site.portal_catalog
        self.step = f"sending again to {target.url} what the site changed meanwhile"
        self.send_changed(catalog, STARTED - CHANGED_MARGIN)
        self.step = f"removing from {target.url} what the site no longer has"
        in_site = set(catalog._catalog.getIndex(key)._index.keys())
        removed = sorted((held | self.sent) - in_site)
        for value in removed:
            conn.delete(id=value)
        conn.flush()
        conn.commit()
        return len(self.sent), len(removed)

    def sync(self):
        """A new view of the database, with every transaction committed until now."""
        transaction.abort()
        storage = self.site._p_jar.db().storage
        ping = getattr(storage, "ping", None)  # a ZEO client: invalidations are asynchronous
        if callable(ping):
            ping()  # answered after every invalidation committed before it was sent
        transaction.begin()
        transaction.doom()
        if not self.registry[ACTIVE]:
            self.registry[ACTIVE] = True  # again, in this doomed transaction only (see main)

    def send_changed(self, catalog, since):
        """Sends again, from the current view, every object modified since `since`."""
        from collective.solr.indexer import SolrIndexProcessor
        from DateTime import DateTime

        processor = SolrIndexProcessor(self.manager)
        path = "/".join(self.site.getPhysicalPath())
        for brain in catalog.unrestrictedSearchResults(
            path=path, modified={"query": DateTime(since), "range": "min"}
        ):
            obj = brain._unrestrictedGetObject()
            processor.index(obj)

    def keys(self, conn, key):
        """Every unique key in the target, read page by page."""
        found, start, rows = set(), 0, 10000
        while True:
            response = conn.search(q="*:*", fl=key, rows=rows, start=start, sort=f"{key} asc",
                                   wt="json")
            try:
                docs = json.loads(response.read())["response"]["docs"]
            finally:
                response.close()
            found.update(d[key] for d in docs if key in d)
            if len(docs) < rows:
                return found
            start += rows


def main(app, args):
    catch_up = CATCH_UP in args
    args = [a for a in args if a != CATCH_UP]
    if len(args) != 1:
        raise UsageError(f"expected 1 argument, got {len(args)}: {args!r}")
    site_id = args[0]
    target = Target(os.environ)
    site = find_site(app, site_id)

    from zope.component.hooks import setSite

    setSite(site)
    # This process never commits: the live instances share this database (see the docstring).
    transaction.doom()
    registry, manager = solr_manager(site, site_id)
    if not registry[ACTIVE]:
        registry[ACTIVE] = True  # in this doomed transaction only
        print(f"{PROG}: collective.solr is inactive in site {site_id!r}: active for this "
              "process only (nothing is committed)", flush=True)
    reindex = Reindex(site, registry, manager, target)
    try:
        found = reindex.run(catch_up)
    except Failure:
        raise
    except Exception as e:  # noqa: BLE001 - every failure must end in a clear message
        said = describe(e, target)
        if said is None:
            traceback.print_exc()
            said = f"{type(e).__name__}: {e}"
        raise Failure(f"{reindex.step}: {said}") from None
    finally:
        transaction.abort()
    if catch_up:
        sent, removed = found
        print(f"{PROG}: site {site_id!r}: caught up {target.base}: {sent} documents sent, "
              f"{removed} removed", flush=True)
    else:
        print(f"{PROG}: site {site_id!r}: {found} documents indexed into {target.base}",
              flush=True)
    return 0


def close(app):
    """Close the database cleanly. Nothing to commit: this script only writes to Solr."""
    try:
        transaction.abort()
        db = app._p_jar.db()
        app._p_jar.close()
        db.close()
    except Exception:  # noqa: BLE001 - best effort
        pass


def run():
    app = globals().get("app")
    try:
        if app is None:
            raise UsageError("no Zope application: run this script with `zconsole run`")
        return main(app, script_args())
    except UsageError as e:
        print(f"{PROG}: {e}\n{USAGE}", file=sys.stderr, flush=True)
        return 2
    except Failure as e:
        transaction.abort()
        print(f"{PROG}: FAILED: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 - e.g. the site cannot be read
        transaction.abort()
        traceback.print_exc()
        print(f"{PROG}: FAILED: {type(e).__name__}: {e}; nothing was committed",
              file=sys.stderr, flush=True)
        return 1
    finally:
        if app is not None:
            close(app)


if __name__ == "__main__":
    sys.exit(run())
