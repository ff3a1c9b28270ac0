"""Create a Plone site in a Zope instance, once; then make sure its REST API answers.

mutu's site operator runs this in a Job, inside the product's image:

    zconsole run ZOPE_CONF create_site.py SITE_ID TITLE [LANGUAGE]

zconsole leaves sys.argv as it was given (`zconsole run ZOPE_CONF SCRIPT ARGS...`), runs this
file with `exec` and binds `app` (the Zope root, with a request and the system user); there is no
`__file__`. So this script's own arguments are the ones after its path, normally sys.argv[4:].

What it does, each part only when needed, so running it again is harmless:
- creates the site with the "classic" distribution of plone.distribution, without example
  content (it commits by itself);
- installs the plone.restapi add-on (anonymous `GET /SITE_ID/++api++` then answers), and commits;
- when COLLECTIVE_SOLR_HOST is set (the site has a Solr index), installs the collective.solr
  add-on and turns it on (its registry record `collective.solr.active`), and commits: the
  instances then index every change into the site's Solr alias and search it; where Solr is
  (host, port, the alias, the site's Solr user) comes from the instances' environment
  (COLLECTIVE_SOLR_*), which collective.solr reads before its registry;
- when PLONE_ADMIN_PASSWORD is set, makes the user PLONE_ADMIN_USER (default `admin`) with that
  password and the role Manager in the Zope root's user folder, unless it has a user of that
  name, and commits: creating the site may have replaced that user folder (by Plone's own),
  losing a user the instances made there when they started.

It prints one line saying what it did. Exit status: 0 when the site is there afterwards (created
now or before), 1 when something failed (nothing of the failed step is committed), 2 on bad
arguments. The last line on stderr then says what went wrong.
"""

import os
import sys
import traceback

import transaction

PROG = "create_site"
USAGE = "usage: zconsole run ZOPE_CONF create_site.py SITE_ID TITLE [LANGUAGE]"
DISTRIBUTION = "classic"
REST_API = "plone.restapi"
SOLR = "collective.solr"
SOLR_ACTIVE = "collective.solr.active"
DEFAULT_LANGUAGE = "en"


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


def known_languages():
    """Language codes the distribution accepts as `default_language`."""
    from plone.distribution.api import distribution as dist_api

    schema = dist_api.get(DISTRIBUTION).schema
    spec = schema.get("definitions", {}).get("languages", {})
    return {code for option in spec.get("anyOf", []) for code in option.get("enum", [])}


def check_arguments(app, site_id, title, language):
    from OFS.ObjectManager import checkValidId
    from zExceptions import BadRequest

    if not site_id.strip() or site_id != site_id.strip():
        raise UsageError(f"site id {site_id!r} is empty or has surrounding spaces")
    if not title.strip():
        raise UsageError("the title is empty")
    if site_id not in app.objectIds():
        try:
            checkValidId(app, site_id)
        except BadRequest as e:
            raise UsageError(f"site id {site_id!r} is not a valid Zope id: {e}") from None
    languages = known_languages()
    if languages and language not in languages:
        raise UsageError(
            f"unknown language {language!r}; use a code the distribution knows, "
            f"e.g. {', '.join(c for c in ('en', 'fr', 'nl', 'de') if c in languages)}"
        )


def existing_site(app, site_id):
    """The Plone site with this id, None when there is none; fails when the id is taken."""
    from plone.base.interfaces import IPloneSiteRoot

    if site_id not in app.objectIds():
        return None
    site = app[site_id]
    if not IPloneSiteRoot.providedBy(site):
        raise Failure(
            f"the id {site_id!r} is taken by a {getattr(site, 'meta_type', type(site).__name__)}"
            f" that is not a Plone site"
        )
    return site


def create(app, site_id, title, language):
    from plone.distribution.api import site as site_api

    answers = {
        "site_id": site_id,
        "title": title,
        "default_language": language,
        "setup_content": False,
    }
    # Commits on success; on failure the transaction manager aborts.
    return site_api.create(app, DISTRIBUTION, answers)


def ensure_rest_api(site):
    """Install plone.restapi unless installed; True when this call installed it."""
    from plone.base.utils import get_installer
    from zope.component.hooks import setSite

    setSite(site)
    installer = get_installer(site, site.REQUEST)
    if installer.is_product_installed(REST_API):
        return False
    if not installer.install_product(REST_API):
        raise Failure(f"installing {REST_API} failed (see the log above)")
    if not installer.is_product_installed(REST_API):
        raise Failure(f"{REST_API} is still not installed after installing it")
    txn = transaction.get()
    txn.note(f"mutu: installed {REST_API} in {site.getId()}")
    txn.commit()
    return True


def ensure_solr(site):
    """Install collective.solr and turn it on, unless it is so; True when this call changed
    something."""
    from plone.base.utils import get_installer
    from plone.registry.interfaces import IRegistry
    from zope.component import getUtility
    from zope.component.hooks import setSite

    setSite(site)
    installer = get_installer(site, site.REQUEST)
    changed = False
    if not installer.is_product_installed(SOLR):
        if not installer.install_product(SOLR):
            raise Failure(f"installing {SOLR} failed (see the log above)")
        if not installer.is_product_installed(SOLR):
            raise Failure(f"{SOLR} is still not installed after installing it")
        changed = True
    registry = getUtility(IRegistry)
    if registry.get(SOLR_ACTIVE) is not True:
        registry[SOLR_ACTIVE] = True
        changed = True
    if changed:
        txn = transaction.get()
        txn.note(f"mutu: installed and turned on {SOLR} in {site.getId()}")
        txn.commit()
    return changed


def ensure_admin(app):
    """Make the administrator in the Zope root's user folder unless it has that user; the name
    when this call made it, None otherwise."""
    password = os.environ.get("PLONE_ADMIN_PASSWORD", "")
    if not password:
        return None
    name = os.environ.get("PLONE_ADMIN_USER", "").strip() or "admin"
    users = app.acl_users
    if users.getUser(name) is not None:
        return None
    # Zope's user folder and Plone's (PluggableAuthService) both add a user with its roles so.
    users._doAddUser(name, password, ["Manager"], [])
    if users.getUser(name) is None:
        raise Failure(f"the user {name!r} is still missing after adding it")
    txn = transaction.get()
    txn.note(f"mutu: made the administrator {name!r}")
    txn.commit()
    return name


class Step:
    """Names the step under way; a failure inside becomes a Failure naming it."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or isinstance(error, (UsageError, Failure)):
            return False
        if not isinstance(error, Exception):
            return False  # KeyboardInterrupt, SystemExit
        transaction.abort()
        traceback.print_exception(kind, error, tb)
        raise Failure(f"{self.name}: {type(error).__name__}: {error}") from None


def main(app, args):
    if len(args) not in (2, 3):
        raise UsageError(f"expected 2 or 3 arguments, got {len(args)}: {args!r}")
    site_id, title = args[0], args[1]
    language = args[2] if len(args) == 3 else DEFAULT_LANGUAGE

    with Step(f"reading the database for site {site_id!r}"):
        site = existing_site(app, site_id)
    if site is None:
        with Step("checking the arguments"):
            check_arguments(app, site_id, title, language)
        with Step(f"creating site {site_id!r}"):
            site = create(app, site_id, title, language)
        done = [f"created site {site_id!r} (title {title!r}, language {language!r})"]
    else:
        done = [f"site {site_id!r} already exists (title {site.Title()!r}), left as it is"]

    with Step(f"installing {REST_API} in site {site_id!r}"):
        installed = ensure_rest_api(site)
    done.append(f"installed {REST_API}" if installed else f"{REST_API} already installed")
    if os.environ.get("COLLECTIVE_SOLR_HOST", "").strip():
        with Step(f"installing {SOLR} in site {site_id!r}"):
            solr = ensure_solr(site)
        done.append(f"installed and turned on {SOLR}" if solr else f"{SOLR} already on")
    with Step("making the administrator"):
        admin = ensure_admin(app)
    if admin:
        done.append(f"made the administrator {admin!r}")
    print(f"{PROG}: " + "; ".join(done), flush=True)
    return 0


def close(app):
    """Close the database cleanly, so FileStorage writes its index (saves a full scan later)."""
    try:
        transaction.abort()
        db = app._p_jar.db()
        app._p_jar.close()
        db.close()
    except Exception:  # noqa: BLE001 - best effort; the work is committed already
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
        print(f"{PROG}: FAILED: {e}; nothing of this step was committed",
              file=sys.stderr, flush=True)
        return 1
    finally:
        if app is not None:
            close(app)


if __name__ == "__main__":
    sys.exit(run())
