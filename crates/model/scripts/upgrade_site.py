"""Run a Plone site's pending upgrade steps: the core's, then each installed add-on's.

mutu's site operator runs this in a Job, in the image of the release the site moves to, with
the site's Zope servers stopped (a FileStorage is locked by its server):

    zconsole run ZOPE_CONF upgrade_site.py SITE_ID

zconsole leaves sys.argv as it was given (`zconsole run ZOPE_CONF SCRIPT ARGS...`), runs this
file with `exec` and binds `app` (the Zope root, with a request and the system user); there is no
`__file__`. So this script's own arguments are the ones after its path, normally sys.argv[4:].

Steps, all in one transaction:
1. the core: when `portal_migration.needUpgrading()`, `portal_migration.upgrade()` with errors
   raised, not swallowed (it also upgrades the core add-ons Plone knows about);
2. every other profile of `portal_setup.listProfilesWithUpgrades()` that was installed (its
   last version is not "unknown") and still has pending steps: `portal_setup.upgradeProfile()`.
   The core profile is left to portal_migration, which never goes past the version of the
   installed Products.CMFPlone (upgradeProfile would run any later steps plone.app.upgrade has).
Then it commits once and prints one line per profile whose version changed
(`upgraded PROFILE from OLD to NEW`) and a last summary line.

Exit status: 0 upgraded or nothing to do; 1 a step failed, or the site is missing: the
transaction is aborted, so nothing is committed, and the last line on stderr names the failing
step; 2 bad arguments.
"""

import sys
import traceback

import transaction

PROG = "upgrade_site"
USAGE = "usage: zconsole run ZOPE_CONF upgrade_site.py SITE_ID"
CORE_PROFILE = "Products.CMFPlone:plone"


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


def version_text(version):
    if isinstance(version, (tuple, list)):
        return ".".join(str(part) for part in version)
    return str(version)


def installed_versions(setup):
    """{profile id: version} of every installed profile that has upgrade steps."""
    from Products.GenericSetup.tool import UNKNOWN

    versions = {}
    for pid in setup.listProfilesWithUpgrades():
        version = setup.getLastVersionForProfile(pid)
        if version != UNKNOWN:
            versions[pid] = version_text(version)
    return versions


def failing_upgrade_step(tb):
    """The upgrade step whose `doStep` raised, found in the traceback; None if none did."""
    from Products.GenericSetup.upgrade import UpgradeEntity

    found = None
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, UpgradeEntity):
            found = candidate
        tb = tb.tb_next
    if found is None:
        return None
    source = version_text(found.source) if found.source else "any"
    dest = version_text(found.dest) if found.dest else "any"
    return f"upgrade step {found.title!r} of {found.profile} ({source} -> {dest})"


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


class Upgrade:
    """Runs the steps, remembering which one is running for the error message."""

    def __init__(self, site):
        self.site = site
        self.setup = site.portal_setup
        self.migration = site.portal_migration
        self.step = "reading the installed versions"

    def run(self):
        from Products.GenericSetup.tool import UNKNOWN

        setup, migration = self.setup, self.migration
        before = installed_versions(setup)

        self.step = f"core upgrade of {CORE_PROFILE}"
        if migration.needUpgrading():
            self.step = (
                f"core upgrade of {CORE_PROFILE} from {migration.getInstanceVersion()} "
                f"to {migration.getFileSystemVersion()}"
            )
            migration.upgrade(swallow_errors=False)
            if migration.needUpgrading():
                raise Failure(
                    f"{self.step} did not reach the release's version: it stopped at "
                    f"{migration.getInstanceVersion()} (no upgrade path?)"
                )

        for pid in setup.listProfilesWithUpgrades():
            if pid == CORE_PROFILE:
                continue  # portal_migration's, above: it stops at the release's version
            if setup.getLastVersionForProfile(pid) == UNKNOWN:
                continue  # never installed in this site
            if not setup.listUpgrades(pid):
                continue
            old = version_text(setup.getLastVersionForProfile(pid))
            self.step = f"upgrade of profile {pid} from {old}"
            setup.upgradeProfile(pid)

        after = installed_versions(setup)
        return [(pid, before.get(pid, "unknown"), after[pid])
                for pid in sorted(after) if before.get(pid) != after[pid]]


def main(app, args):
    if len(args) != 1:
        raise UsageError(f"expected 1 argument, got {len(args)}: {args!r}")
    site_id = args[0]
    site = find_site(app, site_id)

    from zope.component.hooks import setSite

    setSite(site)
    upgrade = Upgrade(site)
    try:
        changes = upgrade.run()
        if changes:
            txn = transaction.get()
            txn.note(f"mutu: upgraded {site_id}: " + ", ".join(
                f"{pid} {old} -> {new}" for pid, old, new in changes))
            upgrade.step = "committing"
            txn.commit()
        else:
            transaction.abort()  # nothing to keep, e.g. versions recorded on first read
    except Failure as e:
        transaction.abort()
        raise Failure(f"{e}; transaction aborted, nothing was committed") from None
    except Exception as e:  # noqa: BLE001 - every failure must end in a clear message
        transaction.abort()
        traceback.print_exc()
        where = failing_upgrade_step(e.__traceback__)
        step = f"{upgrade.step}, at {where}" if where else upgrade.step
        raise Failure(
            f"{step}: {type(e).__name__}: {e}; transaction aborted, nothing was committed"
        ) from None

    for pid, old, new in changes:
        print(f"{PROG}: upgraded {pid} from {old} to {new}")
    if changes:
        print(f"{PROG}: site {site_id!r}: upgraded {len(changes)} profile(s)", flush=True)
    else:
        print(f"{PROG}: site {site_id!r}: up to date, nothing to upgrade", flush=True)
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
