"""The scripts mutu's Jobs run inside a Plone image (crates/model/scripts), run for real.

One Zope instance (mkwsgiinstance, FileStorage with blobs) is shared by the whole module; the
scripts run in it through `zconsole run`, exactly as the Jobs call them, and what they did is
read back from the database by small probe scripts, or over HTTP from `runwsgi`. The tests run
in file order: creation first, then the upgrade cases, each setting up what it needs.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# MUTU_SITE_SCRIPTS points the tests at other copies of the scripts (e.g. to check that a
# broken script makes them fail).
SCRIPTS = Path(os.environ.get("MUTU_SITE_SCRIPTS")
               or Path(__file__).resolve().parents[2] / "crates" / "model" / "scripts")
CREATE_SITE = SCRIPTS / "create_site.py"
UPGRADE_SITE = SCRIPTS / "upgrade_site.py"
BIN = Path(sys.executable).parent  # the venv's console scripts: zconsole, runwsgi, ...

SITE_ID = "Plone"
TITLE = "Commune de Test"
LANGUAGE = "fr"
ADDON = "plone.restapi:default"
CORE = "Products.CMFPlone:plone"
# Versions below the installed ones from which real upgrade steps exist in Plone 6.2.2:
# plone.restapi 0005 -> 0006 -> 0007 and the core 6204 -> 6205.
ADDON_OLD = "0005"
CORE_OLD = "6204"
ZCONSOLE_TIMEOUT = 300


class Instance:
    """A Zope instance made by mkwsgiinstance, with Data.fs under var/filestorage and blobs."""

    def __init__(self, home: Path):
        self.home = home
        self.conf = home / "etc" / "zope.conf"
        self.ini = home / "etc" / "zope.ini"
        self.data_fs = home / "var" / "filestorage" / "Data.fs"
        self.env = dict(os.environ)
        self._probes = 0

    def zconsole(self, script: Path, *args: str) -> subprocess.CompletedProcess:
        """`zconsole run zope.conf SCRIPT ARGS...`, the way the Jobs run the scripts."""
        return subprocess.run(
            [str(BIN / "zconsole"), "run", str(self.conf), str(script), *args],
            cwd=self.home, env=self.env, capture_output=True, text=True,
            timeout=ZCONSOLE_TIMEOUT,
        )

    def probe(self, code: str, *args: str):
        """Runs `code` in the instance (with `app` and `args` bound); returns the JSON it
        printed on the last line of stdout as `RESULT <json>`."""
        self._probes += 1
        path = self.home / f"probe-{self._probes}.py"
        path.write_text(
            "import json, sys, transaction\n"
            "from zope.component.hooks import setSite\n"
            "args = sys.argv[4:]\n"
            + textwrap.dedent(code)
            + "\nprint('RESULT ' + json.dumps(result))\n"
            # Close the database, so FileStorage writes its index for the next run.
            "transaction.abort()\ndb = app._p_jar.db()\napp._p_jar.close()\ndb.close()\n"
        )
        done = self.zconsole(path, *args)
        assert done.returncode == 0, f"probe failed:\n{done.stderr[-3000:]}"
        line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")][-1]
        return json.loads(line[len("RESULT "):])

    def state(self, site_id: str = SITE_ID):
        """What the database says about the site: ids at the root, then title, language,
        whether plone.restapi is installed, profile versions and pending upgrades."""
        return self.probe(
            """
            from plone.base.interfaces import IPloneSiteRoot
            from plone.base.utils import get_installer
            from Products.GenericSetup.tool import UNKNOWN
            result = {"ids": list(app.objectIds()), "site": None}
            site = app.get(args[0]) if args[0] in app.objectIds() else None
            if site is not None and IPloneSiteRoot.providedBy(site):
                setSite(site)
                ps = site.portal_setup
                def text(v):
                    return ".".join(v) if isinstance(v, tuple) else v
                result["site"] = {
                    "title": site.Title(),
                    "language": site.portal_registry["plone.default_language"],
                    "restapi": get_installer(site, site.REQUEST).is_product_installed(
                        "plone.restapi"),
                    "versions": {p: text(ps.getLastVersionForProfile(p))
                                 for p in ps.listProfilesWithUpgrades()
                                 if ps.getLastVersionForProfile(p) != UNKNOWN},
                    "pending": ps.listProfilesWithPendingUpgrades(),
                    "core_needs_upgrade": site.portal_migration.needUpgrading(),
                }
            """,
            site_id,
        )

    def lower_versions(self, site_id: str, versions: dict):
        """Records older versions for profiles (as if the code had been upgraded) and commits;
        returns the versions before, and the profiles that now have pending upgrades."""
        return self.probe(
            """
            from Products.GenericSetup.tool import UNKNOWN
            site = app[args[0]]
            setSite(site)
            ps = site.portal_setup
            before = {p: ".".join(ps.getLastVersionForProfile(p))
                      for p in ps.listProfilesWithUpgrades()
                      if ps.getLastVersionForProfile(p) != UNKNOWN}
            for pair in args[1:]:
                pid, version = pair.split("=")
                ps.setLastVersionForProfile(pid, version)
            transaction.commit()
            result = {"before": before,
                      "pending": ps.listProfilesWithPendingUpgrades(),
                      "core_needs_upgrade": site.portal_migration.needUpgrading()}
            """,
            site_id,
            *[f"{pid}={v}" for pid, v in versions.items()],
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, accept: str = "*/*", timeout: float = 5.0):
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Instance:
    home = tmp_path_factory.mktemp("zope") / "instance"
    subprocess.run(
        [str(BIN / "mkwsgiinstance"), "-d", str(home), "-u", "admin:admin-secret"],
        check=True, capture_output=True, text=True,
    )
    inst = Instance(home)
    conf = inst.conf.read_text()
    default = "path $INSTANCE/var/Data.fs"
    assert default in conf, "mkwsgiinstance's zope.conf changed; adapt this fixture"
    inst.conf.write_text(conf.replace(
        default,
        "path $INSTANCE/var/filestorage/Data.fs\n"
        "     blob-dir $INSTANCE/var/blobstorage",
    ))
    (home / "var" / "filestorage").mkdir(parents=True)
    (home / "var" / "blobstorage").mkdir(parents=True)
    return inst


@pytest.fixture(scope="module")
def created(instance):
    """The first run of create_site.py (the Job's normal case)."""
    return instance.zconsole(CREATE_SITE, SITE_ID, TITLE, LANGUAGE)


@pytest.fixture
def server(instance, created):
    """`runwsgi zope.ini` on a free port of 127.0.0.1; yields its base URL; stopped after."""
    assert created.returncode == 0
    ini = instance.ini.read_text().splitlines()
    port = free_port()
    ini = [f"port = {port}" if l.startswith("port =") else
           "host = 127.0.0.1" if l.startswith("host =") else l for l in ini]
    instance.ini.write_text("\n".join(ini) + "\n")
    log = (instance.home / "var" / "log" / "runwsgi.out").open("w")
    proc = subprocess.Popen(
        [str(BIN / "runwsgi"), str(instance.ini)],
        cwd=instance.home, env=instance.env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (
                f"runwsgi exited with {proc.returncode}:\n"
                + (instance.home / "var" / "log" / "runwsgi.out").read_text()[-3000:])
            try:
                if get(f"{base}/ok", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "runwsgi did not answer /ok within 120 s"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- create_site.py ----------------------------------------------------------------------


def test_create_site_creates_a_plone_site_with_title_language_and_rest_api(instance, created):
    assert created.returncode == 0, created.stderr[-3000:]
    assert last_line(created.stdout) == (
        f"create_site: created site {SITE_ID!r} (title {TITLE!r}, language {LANGUAGE!r});"
        " installed plone.restapi"
    )
    site = instance.state()["site"]
    assert site is not None, "no Plone site in the database after create_site.py"
    assert site["title"] == TITLE
    assert site["language"] == LANGUAGE
    assert site["restapi"] is True
    assert site["pending"] == [] and not site["core_needs_upgrade"]


def test_create_site_run_again_changes_nothing(instance, created):
    assert created.returncode == 0
    size = instance.data_fs.stat().st_size
    again = instance.zconsole(CREATE_SITE, SITE_ID, "Another title", LANGUAGE)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already exists" in last_line(again.stdout)
    assert "plone.restapi already installed" in last_line(again.stdout)
    # Nothing committed: a FileStorage grows with every transaction.
    assert instance.data_fs.stat().st_size == size
    state = instance.state()
    assert state["ids"].count(SITE_ID) == 1
    assert state["site"]["title"] == TITLE and state["site"]["restapi"] is True


def test_create_site_makes_the_administrator_unless_there(instance, created):
    assert created.returncode == 0
    env = dict(instance.env, PLONE_ADMIN_USER="agent", PLONE_ADMIN_PASSWORD="s3cret-Agent")
    run = lambda: subprocess.run(  # noqa: E731
        [str(BIN / "zconsole"), "run", str(instance.conf), str(CREATE_SITE), SITE_ID, TITLE,
         LANGUAGE], cwd=instance.home, env=env, capture_output=True, text=True,
        timeout=ZCONSOLE_TIMEOUT)
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "made the administrator 'agent'" in last_line(first.stdout)
    found = instance.probe(
        "u = app.acl_users.getUser('agent')\n"
        "result = {'roles': sorted(u.getRoles()) if u else None}\n")
    assert "Manager" in (found["roles"] or []), found
    # There already: nothing written.
    size = instance.data_fs.stat().st_size
    again = run()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "administrator" not in last_line(again.stdout)
    assert instance.data_fs.stat().st_size == size


def test_create_site_with_a_solr_index_installs_and_turns_on_collective_solr(instance, created):
    # Another site of the same database: the other tests' site stays without Solr.
    assert created.returncode == 0
    env = dict(instance.env, COLLECTIVE_SOLR_HOST="127.0.0.1", COLLECTIVE_SOLR_PORT="9",
               COLLECTIVE_SOLR_BASE="/solr/searched")
    run = lambda: subprocess.run(  # noqa: E731
        [str(BIN / "zconsole"), "run", str(instance.conf), str(CREATE_SITE), "searched",
         "Searched", LANGUAGE], cwd=instance.home, env=env, capture_output=True, text=True,
        timeout=ZCONSOLE_TIMEOUT)
    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "installed and turned on collective.solr" in last_line(first.stdout)
    probe = """
        from plone.base.utils import get_installer
        from plone.registry.interfaces import IRegistry
        from zope.component import getUtility
        result = {}
        for sid in args:
            site = app[sid]
            setSite(site)
            result[sid] = {
                "installed": get_installer(site, site.REQUEST).is_product_installed(
                    "collective.solr"),
                "active": getUtility(IRegistry).get("collective.solr.active"),
            }
    """
    found = instance.probe(probe, "searched", SITE_ID)
    assert found["searched"] == {"installed": True, "active": True}, found
    # A site without an index gets neither.
    assert found[SITE_ID]["installed"] is False, found
    # Run again: nothing written.
    size = instance.data_fs.stat().st_size
    again = run()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "collective.solr already on" in last_line(again.stdout)
    assert instance.data_fs.stat().st_size == size


def test_created_site_answers_its_rest_api_anonymously(server):
    status, body = get(f"{server}/{SITE_ID}/++api++", accept="application/json")
    assert status == 200, body[:500]
    assert json.loads(body)["title"] == TITLE


def test_create_site_refuses_an_unknown_language_and_creates_nothing(instance, created):
    failed = instance.zconsole(CREATE_SITE, "other", "Other", "xx-nope")
    assert failed.returncode != 0
    assert "unknown language 'xx-nope'" in failed.stderr
    assert failed.stdout.strip() == ""
    assert "other" not in instance.state()["ids"]


# --- upgrade_site.py -----------------------------------------------------------------------


def test_upgrade_site_runs_an_addons_pending_steps_then_has_nothing_to_do(instance, created):
    lowered = instance.lower_versions(SITE_ID, {ADDON: ADDON_OLD})
    latest = lowered["before"][ADDON]
    assert latest != ADDON_OLD
    assert lowered["pending"] == [ADDON], "precondition: the add-on has pending upgrade steps"
    assert not lowered["core_needs_upgrade"]

    first = instance.zconsole(UPGRADE_SITE, SITE_ID)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"upgrade_site: upgraded {ADDON} from {ADDON_OLD} to {latest}" in first.stdout
    site = instance.state()["site"]
    assert site["versions"][ADDON] == latest
    assert site["pending"] == []

    second = instance.zconsole(UPGRADE_SITE, SITE_ID)
    assert second.returncode == 0, second.stderr[-3000:]
    assert last_line(second.stdout) == (
        f"upgrade_site: site {SITE_ID!r}: up to date, nothing to upgrade")


def test_upgrade_site_runs_the_core_upgrade(instance, created):
    lowered = instance.lower_versions(SITE_ID, {CORE: CORE_OLD})
    latest = lowered["before"][CORE]
    assert lowered["core_needs_upgrade"], "precondition: the core needs upgrading"

    done = instance.zconsole(UPGRADE_SITE, SITE_ID)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"upgrade_site: upgraded {CORE} from {CORE_OLD} to {latest}" in done.stdout
    site = instance.state()["site"]
    assert site["versions"][CORE] == latest
    assert not site["core_needs_upgrade"] and site["pending"] == []


def test_upgrade_site_fails_clearly_for_a_missing_site(instance, created):
    size = instance.data_fs.stat().st_size
    failed = instance.zconsole(UPGRADE_SITE, "no-such-site")
    assert failed.returncode != 0
    assert "no site 'no-such-site'" in last_line(failed.stderr)
    assert instance.data_fs.stat().st_size == size


# An upgrade step that raises, for a profile upgraded after plone.restapi:default (profiles are
# upgraded in sorted order).
FAILING_PROFILE = "plonetheme.barceloneta:default"
FAILING_STEP_ZCML = f"""\
<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:genericsetup="http://namespaces.zope.org/genericsetup">
  <genericsetup:upgradeStep
      profile="{FAILING_PROFILE}" source="3" destination="4"
      title="mutu test: a step that fails" handler="mutu_failing_step.fail" />
</configure>
"""


def test_upgrade_site_names_a_failing_step_and_commits_none_of_the_upgrade(instance, created):
    # Real steps that succeed (plone.restapi 0005 -> 0007), then, for the next profile, a step
    # that raises, registered through the instance's package-includes (handler on PYTHONPATH).
    code = instance.home / "failing-step"
    code.mkdir()
    (code / "mutu_failing_step.py").write_text(
        "def fail(context):\n    raise RuntimeError('broken on purpose')\n")
    includes = instance.home / "etc" / "package-includes"
    includes.mkdir(exist_ok=True)
    zcml = includes / "zz-mutu-failing-step-configure.zcml"
    zcml.write_text(FAILING_STEP_ZCML)
    saved = dict(instance.env)
    instance.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(code), instance.env.get("PYTHONPATH")) if p)
    try:
        lowered = instance.lower_versions(SITE_ID, {ADDON: ADDON_OLD})
        assert lowered["before"][FAILING_PROFILE] == "3"
        assert lowered["pending"] == [ADDON, FAILING_PROFILE]

        failed = instance.zconsole(UPGRADE_SITE, SITE_ID)
        assert failed.returncode == 1
        message = last_line(failed.stderr)
        assert message.startswith(f"upgrade_site: FAILED: upgrade of profile {FAILING_PROFILE}")
        assert "'mutu test: a step that fails'" in message
        assert "broken on purpose" in message
        assert "nothing was committed" in message
        assert "upgraded" not in failed.stdout
        # The profile upgraded before the failing one is not committed either.
        assert instance.state()["site"]["versions"][ADDON] == ADDON_OLD
    finally:
        zcml.unlink()
        instance.env = saved
    # Without the broken step the same site upgrades fine.
    repaired = instance.zconsole(UPGRADE_SITE, SITE_ID)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert f"upgraded {ADDON} from {ADDON_OLD} to 0007" in repaired.stdout
    assert instance.state()["site"]["pending"] == []
