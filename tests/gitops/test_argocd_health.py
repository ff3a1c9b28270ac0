"""The Argo CD health check of mutu's kinds (docs/gitops/argocd-health.lua), run in Lua.

    tests/gitops/run.sh                      # builds the venv with lupa once, then runs this
    python3 tests/gitops/test_argocd_health.py [-v]   # with lupa importable; exit 1 on failure

pytest finds the test_* functions too. Each case is an object shaped like the ones the operators
write, with the reasons of the code: the file:line beside it is where that reason is set, and
test_cases_cite_the_code checks that each reason is still a string literal of the cited file
(lines may drift, reasons may not). The script runs in lupa's Lua 5.1 (the dialect of Argo CD's
gopher-lua) and Lua 5.4, with io, os, debug and the loaders taken away as in Argo CD.
"""

import importlib.util
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "gitops" / "argocd-health.lua"
YAML = ROOT / "docs" / "gitops" / "argocd-cm.yaml"
RENDER = ROOT / "docs" / "gitops" / "render-argocd-cm.py"

HEALTHY, PROGRESSING, DEGRADED, SUSPENDED = "Healthy", "Progressing", "Degraded", "Suspended"
GEN = 3  # metadata.generation of the sample objects, unless a case says otherwise

OP = "operators"
TENANT = f"{OP}/tenant/src/reconcile.rs"
TENANT_VALIDATE = f"{OP}/tenant/src/validate.rs"
SITE = f"{OP}/site/src/reconcile.rs"
PRODUCT = f"{OP}/site/src/product.rs"
ISSUER = f"{OP}/certificate/src/issuer.rs"
POLICY = f"{OP}/backup/src/engine.rs"
BACKUP = f"{OP}/backup/src/backup.rs"
BACKUP_STATUS = f"{OP}/backup/src/status.rs"
RESTORE = f"{OP}/backup/src/restore.rs"
WAVE = f"{OP}/wave/src/engine.rs"
REQUEST = f"{OP}/provisioning/src/check.rs"
WAVE_PLAN = "operators/wave/src/plan.rs"
MODEL_WAVE = "crates/model/src/wave.rs"
WAVE_PLAN = "operators/wave/src/plan.rs"
MODEL_WAVE_PROGRESS = "crates/model/src/wave/progress.rs"
WAVE_ACT = "operators/wave/src/act.rs"
MODEL_ADMISSION = "crates/model/src/admission.rs"
SOLR_INDEX_RECONCILE = "operators/solr-index/src/reconcile.rs"
CERTIFICATE_RECONCILE_ACME_ORDER = "operators/certificate/src/reconcile/acme_order.rs"
CERTIFICATE_RECONCILE_TLS_SECRET = "operators/certificate/src/reconcile/tls_secret.rs"
CERTIFICATE_RECONCILE_STATUS = "operators/certificate/src/reconcile/status.rs"
CERTIFICATE_RECONCILE_REFUSAL = "operators/certificate/src/reconcile/refusal.rs"
MODEL_PROVISIONING = "crates/model/src/provisioning.rs"


def c(type_, status, reason, message="", generation=GEN):
    """A condition as mutu_runtime::conditions::merge writes it."""
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }


class Case:
    def __init__(self, kind, expect, conditions=None, *, src, message=None, generation=GEN,
                 observed=GEN, status=None, spec=None, no_status=False):
        self.kind = kind
        self.expect = expect
        self.src = src  # ["path:line", ...], or None for a state the code never writes
        self.message = message  # a substring hs.message must contain
        self.obj = {
            "apiVersion": "hosting.imio.be/v1alpha1",
            "kind": kind,
            "metadata": {"name": "sample", "namespace": "tenant-mons"},
            "spec": spec or {},
        }
        if generation is not None:
            self.obj["metadata"]["generation"] = generation
        if not no_status:
            st = {"conditions": conditions or []}
            if observed is not None:
                st["observedGeneration"] = observed
            st.update(status or {})
            self.obj["status"] = st

    def reasons(self):
        st = self.obj.get("status", {})
        out = [x["reason"] for x in st.get("conditions", [])]
        out += [r["code"] for r in st.get("reasons", [])]
        return out

    def __str__(self):
        conds = self.obj.get("status", {}).get("conditions")
        if "status" not in self.obj:
            what = "no status"
        else:
            what = ", ".join(f"{x['type']}={x['status']}/{x['reason']}" for x in conds) or "-"
        return f"{self.kind} [{what}] -> {self.expect}"


CASES = [
    # --- MemberTenant --------------------------------------------------------------------
    Case("MemberTenant", HEALTHY, [
        c("Ready", "True", "Provisioned", "namespace tenant-mons with quota, network policies and admin access in place; sites: delib 1/2"),
        c("Suspended", "False", "Active", "the member's sites are served"),
    ], src=[f"{TENANT}:324", f"{TENANT}:243"]),
    Case("MemberTenant", SUSPENDED, [
        c("Ready", "True", "Provisioned", "namespace tenant-mons ..."),
        c("Suspended", "True", "Suspended", "spec.suspended is true: the member's sites are scaled to zero and serve nothing; no data is deleted"),
    ], src=[f"{TENANT}:324", f"{TENANT}:241"], message="spec.suspended is true"),
    Case("MemberTenant", DEGRADED, [
        c("Ready", "False", "DomainConflict", "spec.domains: mons.be is already claimed by MemberTenant mons2; remove it from this tenant, or from mons2 first"),
        c("Suspended", "False", "Active", "the member's sites are served"),
    ], src=[f"{TENANT_VALIDATE}:34", f"{TENANT}:260", f"{TENANT}:243"], message="already claimed"),
    Case("MemberTenant", DEGRADED, [
        c("Ready", "False", "NamespaceTaken", "namespace tenant-mons already exists and was not created by mutu"),
        c("Suspended", "False", "Active"),
    ], src=[f"{TENANT_VALIDATE}:35", f"{TENANT}:243"]),
    # A refusal wins over the suspension.
    Case("MemberTenant", DEGRADED, [
        c("Ready", "False", "NameTooLong", "the name ... is 60 characters long"),
        c("Suspended", "True", "Suspended"),
    ], src=[f"{TENANT_VALIDATE}:33", f"{TENANT}:241"]),
    # No Ready=False reason of a tenant is transient: Progressing only until mutu saw the spec.
    Case("MemberTenant", PROGRESSING, [
        c("Ready", "True", "Provisioned", "namespace tenant-mons ...", generation=3),
        c("Suspended", "False", "Active", generation=3),
    ], src=[f"{TENANT}:324", f"{TENANT}:233"], generation=4, observed=3,
        message="mutu has not seen generation 4 yet"),

    # --- Product -------------------------------------------------------------------------
    Case("Product", HEALTHY, [
        c("Ready", "True", "InCatalog", "12 site(s), 11 ready, 9 on release 6.2.1"),
    ], src=[f"{PRODUCT}:89"], message="12 site(s)"),
    Case("Product", PROGRESSING, src=[f"{PRODUCT}:81"], generation=1, no_status=True,
         message="mutu has not seen generation 1 yet"),
    Case("Product", PROGRESSING, [c("Ready", "True", "InCatalog", "3 site(s)", generation=1)],
         src=[f"{PRODUCT}:89"], generation=2, observed=1),
    # The product controller never writes Ready=False: any such reason is unknown, so Degraded.
    Case("Product", DEGRADED, [c("Ready", "False", "ImageMissing", "hypothetical")], src=None),

    # --- PloneSite -----------------------------------------------------------------------
    Case("PloneSite", HEALTHY, [
        c("Available", "True", "InstancesReady", "2/2 instances ready on pool frontend"),
        c("Degraded", "False", "AsExpected", "no failure"),
        c("Progressing", "False", "Stable", "running release 6.2.1"),
        c("Ready", "True", "Serving", "2/2 instances ready on release 6.2.1"),
        c("SiteCreated", "True", "Created", "the site exists in its database"),
    ], src=[f"{SITE}:519", f"{SITE}:214", f"{SITE}:485", f"{SITE}:245", f"{SITE}:426"],
        message="2/2 instances ready on release 6.2.1"),
    Case("PloneSite", PROGRESSING, [
        c("Degraded", "False", "AsExpected", "no failure"),
        c("Progressing", "True", "Starting", "waiting for the site-creation Job"),
        c("Ready", "False", "Starting", "waiting for the site-creation Job"),
        c("SiteCreated", "False", "Creating"),
    ], src=[f"{SITE}:245", f"{SITE}:251", f"{SITE}:214", f"{SITE}:426"]),
    Case("PloneSite", PROGRESSING, [
        c("Degraded", "False", "AsExpected", "no failure"),
        c("Progressing", "True", "Upgrading", "upgrade Job to release 6.3.0 is running; release 6.2.1 keeps serving"),
        c("Ready", "True", "Serving", "2/2 instances ready on release 6.2.1"),
    ], src=[f"{SITE}:483", f"{SITE}:245", f"{SITE}:214"], message="upgrade Job to release 6.3.0"),
    Case("PloneSite", PROGRESSING, [
        c("Progressing", "True", "Offline", "2/2 instances ready on release 6.2.1, but the public sees the maintenance page (migrationplan/to-frontend)"),
        c("Ready", "False", "Offline", "2/2 instances ready on release 6.2.1, but the public sees the maintenance page (migrationplan/to-frontend)"),
    ], src=[f"{SITE}:245", f"{SITE}:251"]),
    Case("PloneSite", DEGRADED, [
        c("Progressing", "False", "HostnameTaken", "not admitted: nothing is served"),
        c("Ready", "False", "HostnameTaken", "spec.hostnames: deliberations.mons.be is already served by site tenant-mons/delib"),
    ], src=[f"{MODEL_ADMISSION}:132", f"{SITE}:243", f"{SITE}:214"], message="already served"),
    Case("PloneSite", DEGRADED, [
        c("Progressing", "False", "InvalidName", "not admitted: nothing is served"),
        c("Ready", "False", "InvalidName", "metadata.name: \"delib-zeo\" ends with \"-zeo\", which names a Service of site \"delib\""),
    ], src=[f"{MODEL_ADMISSION}:79", f"{SITE}:243"], message="names a Service"),
    Case("PloneSite", DEGRADED, [
        c("Progressing", "False", "NotEntitled", "not admitted: nothing is served"),
        c("Ready", "False", "NotEntitled", "..."),
    ], src=[f"{MODEL_ADMISSION}:81", f"{SITE}:243"]),
    # Serving the old release, but the upgrade failed: the Degraded condition says so.
    Case("PloneSite", DEGRADED, [
        c("Degraded", "True", "UpgradeFailed", "the upgrade to release 6.3.0 failed (BackoffLimitExceeded); release 6.2.1 keeps serving with its data untouched."),
        c("Progressing", "False", "Stable", "running release 6.2.1"),
        c("Ready", "True", "Serving", "2/2 instances ready on release 6.2.1"),
    ], src=[f"{SITE}:533", f"{SITE}:485", f"{SITE}:245"], message="the upgrade to release 6.3.0 failed"),
    # Written with the status as it was (reconcile.rs:283): status.observedGeneration stays
    # behind, the Ready condition carries the generation seen.
    Case("PloneSite", DEGRADED, [
        c("Ready", "False", "CatalogOrTenantMissing", "the site's MemberTenant or Product no longer exists; mutu leaves the site as it is", generation=5),
    ], src=[f"{SITE}:272"], generation=5, observed=4, message="no longer exists"),
    Case("PloneSite", SUSPENDED, [
        c("Progressing", "False", "Suspended", "nothing runs while the member is suspended"),
        c("Ready", "False", "Suspended", "the member is suspended: the site is scaled to zero and serves nothing; its data is kept"),
    ], src=[f"{SITE}:278", f"{SITE}:251"], message="the member is suspended"),
    Case("PloneSite", SUSPENDED, [
        c("Progressing", "True", "Maintenance", "in maintenance (restore/delib-1): the site's servers are stopped; its data is kept"),
        c("Ready", "False", "Maintenance", "in maintenance (restore/delib-1): the site's servers are stopped; its data is kept"),
    ], src=[f"{SITE}:245", f"{SITE}:251"], message="restore/delib-1"),
    # A reason the table does not know: Degraded, never hidden.
    Case("PloneSite", DEGRADED, [c("Ready", "False", "SomethingNew", "a reason added later")],
         src=None, message="a reason added later"),
    Case("PloneSite", PROGRESSING, [c("Ready", "Unknown", "Checking")], src=None),
    Case("PloneSite", PROGRESSING, src=None, no_status=True, message="mutu has not seen generation 3 yet"),

    # --- SolrIndex -----------------------------------------------------------------------
    Case("SolrIndex", HEALTHY, [
        c("Degraded", "False", "SolrAnswers", "Solr answers"),
        c("Ready", "True", "Ready", "alias tenant-mons.delib serves collection tenant-mons-delib-v3"),
        c("Reindexed", "True", "Current", "the alias serves configset version v3 as asked; nothing to reindex"),
    ], src=[f"{SOLR_INDEX_RECONCILE}:288", f"{SOLR_INDEX_RECONCILE}:285", f"{SOLR_INDEX_RECONCILE}:304"]),
    Case("SolrIndex", PROGRESSING, [
        c("Degraded", "False", "SolrAnswers", "Solr answers"),
        c("Ready", "True", "Ready", "alias tenant-mons.delib serves collection tenant-mons-delib-v3"),
        c("Reindexed", "False", "Reindexing", "Job delib-reindex-v4 reindexes the site into tenant-mons-delib-v4; the alias stays on tenant-mons-delib-v3 until it succeeds"),
    ], src=[f"{SOLR_INDEX_RECONCILE}:288", f"{SOLR_INDEX_RECONCILE}:285", f"{SOLR_INDEX_RECONCILE}:426"], message="reindexes the site"),
    Case("SolrIndex", DEGRADED, [
        c("Ready", "False", "UnknownConfigset", "spec.configsetVersion: mutu ships no version v9 of configset plone; shipped versions: v3, v4"),
    ], src=[f"{SOLR_INDEX_RECONCILE}:223"]),
    Case("SolrIndex", DEGRADED, [
        c("Ready", "False", "NoSolrCredentials", "no Solr admin credentials: create Secret mutu-system/solr-admin"),
    ], src=[f"{SOLR_INDEX_RECONCILE}:243"]),
    # Solr down: Ready stays True (the alias still serves), Degraded=True says it.
    Case("SolrIndex", DEGRADED, [
        c("Degraded", "True", "SolrUnreachable", "cannot reach Solr at http://solr:8983"),
        c("Ready", "True", "Ready", "cannot reach Solr at http://solr:8983"),
    ], src=[f"{SOLR_INDEX_RECONCILE}:339", f"{SOLR_INDEX_RECONCILE}:363", f"{SOLR_INDEX_RECONCILE}:360"], message="cannot reach Solr"),
    Case("SolrIndex", DEGRADED, [
        c("Degraded", "False", "SolrAnswers", "Solr answers"),
        c("Ready", "True", "Ready", "alias tenant-mons.delib serves collection tenant-mons-delib-v3"),
        c("Reindexed", "False", "ReindexFailed", "Job delib-reindex-v4 failed (BackoffLimitExceeded); the alias stays on tenant-mons-delib-v3."),
    ], src=[f"{SOLR_INDEX_RECONCILE}:288", f"{SOLR_INDEX_RECONCILE}:285", f"{SOLR_INDEX_RECONCILE}:473"], message="failed"),

    # --- Certificate ---------------------------------------------------------------------
    Case("Certificate", HEALTHY, [
        c("Issuing", "False", "UpToDate", "next renewal at 2026-03-01T00:00:00Z"),
        c("Ready", "True", "Issued", "the Secret delib-tls holds a valid certificate for deliberations.mons.be until 2026-04-01T00:00:00Z"),
    ], src=[f"{CERTIFICATE_RECONCILE_STATUS}:37", f"{CERTIFICATE_RECONCILE_STATUS}:24"]),
    Case("Certificate", PROGRESSING, [
        c("Issuing", "True", "Validating", "the ACME server is validating deliberations.mons.be"),
        c("Ready", "False", "Missing", "Secret delib-tls: the Secret does not exist"),
    ], src=[f"{CERTIFICATE_RECONCILE_ACME_ORDER}:265", f"{CERTIFICATE_RECONCILE_TLS_SECRET}:67", f"{CERTIFICATE_RECONCILE_STATUS}:54"], message="the ACME server is validating"),
    Case("Certificate", PROGRESSING, [
        c("Issuing", "True", "WaitingForBudget", "the issuer's budget of new orders is spent until ..."),
        c("Ready", "False", "Expired", "Secret delib-tls: the certificate expired at ..."),
    ], src=[f"{CERTIFICATE_RECONCILE_ACME_ORDER}:163", f"{CERTIFICATE_RECONCILE_TLS_SECRET}:109"]),
    Case("Certificate", PROGRESSING, [
        c("Issuing", "True", "OrderPlaced", "order https://acme/order/1 placed for deliberations.mons.be"),
        c("Ready", "False", "NamesDiffer", "Secret delib-tls: the certificate is for a, the spec asks for a, b"),
    ], src=[f"{CERTIFICATE_RECONCILE_ACME_ORDER}:141", f"{CERTIFICATE_RECONCILE_TLS_SECRET}:98"]),
    Case("Certificate", DEGRADED, [
        c("Issuing", "False", "ForeignDomain", "spec.dnsNames: www.other.be is not under the domains of member mons (mons.be)"),
        c("Ready", "False", "ForeignDomain", "spec.dnsNames: www.other.be is not under the domains of member mons (mons.be)"),
    ], src=[f"{CERTIFICATE_RECONCILE_REFUSAL}:45", f"{CERTIFICATE_RECONCILE_STATUS}:82", f"{CERTIFICATE_RECONCILE_STATUS}:83"]),
    Case("Certificate", DEGRADED, [
        c("Issuing", "False", "Backoff", "2 failed attempt(s), the last: the ACME server refused the order: ...; next attempt at ..."),
        c("Ready", "False", "Missing", "Secret delib-tls: the Secret does not exist"),
    ], src=[f"{CERTIFICATE_RECONCILE_STATUS}:95", f"{CERTIFICATE_RECONCILE_TLS_SECRET}:67"], message="2 failed attempt(s)"),
    Case("Certificate", DEGRADED, [
        c("Issuing", "False", "IssuerNotReady", "the CA Secret mutu-system/ca does not exist or lacks tls.crt and tls.key"),
        c("Ready", "False", "Missing", "Secret delib-tls: the Secret does not exist"),
    ], src=[f"{ISSUER}:143", f"{CERTIFICATE_RECONCILE_ACME_ORDER}:81", f"{CERTIFICATE_RECONCILE_TLS_SECRET}:67"]),
    Case("Certificate", DEGRADED, [
        c("Issuing", "False", "IssuerNotFound", "CertificateIssuer letsencrypt does not exist"),
        c("Ready", "False", "IssuerNotFound", "CertificateIssuer letsencrypt does not exist"),
    ], src=[f"{CERTIFICATE_RECONCILE_STATUS}:74", f"{CERTIFICATE_RECONCILE_STATUS}:74"]),
    # Still serving while renewal fails: Healthy, with the failure in the message.
    Case("Certificate", HEALTHY, [
        c("Issuing", "False", "Backoff", "1 failed attempt(s), the last: connection refused; next attempt at ..."),
        c("Ready", "True", "Issued", "the Secret delib-tls holds a valid certificate"),
    ], src=[f"{CERTIFICATE_RECONCILE_STATUS}:95", f"{CERTIFICATE_RECONCILE_STATUS}:24"], message="renewal failing: 1 failed attempt(s)"),

    # --- CertificateIssuer ---------------------------------------------------------------
    Case("CertificateIssuer", HEALTHY, [
        c("Ready", "True", "Registered", "ACME account registered at https://acme-v02.api.letsencrypt.org/directory"),
    ], src=[f"{ISSUER}:73"]),
    Case("CertificateIssuer", HEALTHY, [
        c("Ready", "True", "SelfSigned", "each certificate is signed by its own key"),
    ], src=[f"{ISSUER}:166"]),
    Case("CertificateIssuer", PROGRESSING, [
        c("Ready", "False", "ServerUnavailable", "cannot talk to the ACME server: connection refused"),
    ], src=[f"{ISSUER}:83"], message="cannot talk to the ACME server"),
    Case("CertificateIssuer", DEGRADED, [
        c("Ready", "False", "InvalidSettings", "spec.acme.server: https://x is not among the ACME servers this operator may use"),
    ], src=[f"{ISSUER}:81"]),
    Case("CertificateIssuer", DEGRADED, [
        c("Ready", "False", "SecretNotFound", "Secret mutu-system/ca does not exist; put the CA's tls.crt and tls.key there, or set spec.ca.create: true"),
    ], src=[f"{ISSUER}:124"]),

    # --- BackupPolicy --------------------------------------------------------------------
    Case("BackupPolicy", HEALTHY, [
        c("Ready", "True", "Planned", "120 sites: 6 h 10 min of backups expected in 22:00-05:00, at most 3 at once (maxConcurrent 4)"),
    ], src=[f"{POLICY}:234"], spec={"default": True}),
    Case("BackupPolicy", PROGRESSING, [c("Ready", "True", "Planned", "...", generation=2)],
         src=[f"{POLICY}:234", f"{POLICY}:194"], generation=3, observed=2),
    Case("BackupPolicy", DEGRADED, [
        c("Ready", "False", "WindowTooSmall", "the window cannot hold the fleet: ... Raise maxConcurrent, widen the window, or move sites to another policy"),
    ], src=[f"{POLICY}:247"], message="the window cannot hold the fleet"),
    Case("BackupPolicy", DEGRADED, [
        c("Ready", "False", "InvalidWindow", "spec.window: ..."),
    ], src=[f"{POLICY}:213"]),
    Case("BackupPolicy", DEGRADED, [
        c("Default", "False", "AnotherDefault", "another policy, nightly, is the default (the oldest of those marked default); unmark this one"),
        c("Ready", "True", "Planned", "..."),
    ], src=[f"{POLICY}:266", f"{POLICY}:234"], spec={"default": True}, message="unmark this one"),
    # Unmarked since: the controller leaves the old Default condition, which no longer counts.
    Case("BackupPolicy", HEALTHY, [
        c("Default", "False", "AnotherDefault", "another policy, nightly, is the default"),
        c("Ready", "True", "Planned", "..."),
    ], src=[f"{POLICY}:266", f"{POLICY}:234"], spec={"default": False}),

    # --- Backup --------------------------------------------------------------------------
    Case("Backup", HEALTHY, [
        c("Complete", "True", "BackedUp", "Job backup-delib-1 succeeded"),
        c("Progressing", "False", "Done", "finished"),
        c("Ready", "True", "Restorable", "this backup can be restored"),
    ], src=[f"{BACKUP}:367", f"{BACKUP_STATUS}:59", f"{BACKUP}:374"], generation=1, observed=1,
        message="succeeded"),
    Case("Backup", PROGRESSING, [
        c("Complete", "False", "Running", "Job backup-delib-1 backs the site up", generation=1),
        c("Progressing", "True", "Running", "Job backup-delib-1 backs the site up", generation=1),
    ], src=[f"{BACKUP}:150", f"{BACKUP_STATUS}:49", f"{BACKUP_STATUS}:50"], generation=1, observed=1),
    Case("Backup", PROGRESSING, [
        c("Progressing", "False", "Queued", "4 backups of policy nightly run already (maxConcurrent 4)", generation=1),
    ], src=[f"{BACKUP}:273"], generation=1, observed=1, message="run already"),
    Case("Backup", PROGRESSING, [
        c("Progressing", "False", "WaitingForRestore", "Restore delib-1 of the site runs first", generation=1),
    ], src=[f"{BACKUP}:261"], generation=1, observed=1),
    Case("Backup", DEGRADED, [
        c("Complete", "False", "JobFailed", "Job backup-delib-1 failed (BackoffLimitExceeded); read its log", generation=1),
        c("Failed", "True", "JobFailed", "Job backup-delib-1 failed (BackoffLimitExceeded); read its log", generation=1),
        c("Progressing", "False", "Done", "finished", generation=1),
    ], src=[f"{BACKUP}:395", f"{BACKUP_STATUS}:67", f"{BACKUP_STATUS}:68", f"{BACKUP_STATUS}:59"], generation=1, observed=1,
        message="BackoffLimitExceeded"),
    Case("Backup", DEGRADED, [
        c("Complete", "False", "NoSite", "spec.site: no PloneSite delib in namespace tenant-mons", generation=1),
        c("Failed", "True", "NoSite", "spec.site: no PloneSite delib in namespace tenant-mons", generation=1),
    ], src=[f"{BACKUP}:253", f"{BACKUP_STATUS}:67", f"{BACKUP_STATUS}:68"], generation=1, observed=1),
    Case("Backup", PROGRESSING, src=[f"{BACKUP}:173"], generation=1, no_status=True),
    # A Progressing=False reason the table does not know: Degraded.
    Case("Backup", DEGRADED, [c("Progressing", "False", "Stuck", "hypothetical", generation=1)],
         src=None, generation=1, observed=1),

    # --- Restore -------------------------------------------------------------------------
    Case("Restore", HEALTHY, [
        c("Complete", "True", "Restored", "Backup delib-1 is restored and site delib is Ready", generation=1),
        c("Progressing", "False", "Done", "finished", generation=1),
    ], src=[f"{RESTORE}:512", f"{BACKUP_STATUS}:59"], generation=1, observed=1),
    Case("Restore", PROGRESSING, [
        c("Complete", "False", "Stopping", "the restore has not run yet", generation=1),
        c("Progressing", "True", "Stopping", "site delib is in maintenance; waiting for its 2 server(s) to stop", generation=1),
    ], src=[f"{RESTORE}:361", f"{RESTORE}:367"], generation=1, observed=1, message="waiting for its 2 server(s)"),
    Case("Restore", PROGRESSING, [
        c("Progressing", "False", "WaitingForBackup", "Backup delib-1 has not completed yet", generation=1),
    ], src=[f"{RESTORE}:259"], generation=1, observed=1),
    Case("Restore", PROGRESSING, [
        c("Complete", "False", "Restoring", "Job restore-delib-1 restores Backup delib-1", generation=1),
        c("Progressing", "True", "Restoring", "Job restore-delib-1 restores Backup delib-1", generation=1),
    ], src=[f"{RESTORE}:445", f"{BACKUP_STATUS}:49", f"{BACKUP_STATUS}:50"], generation=1, observed=1),
    Case("Restore", DEGRADED, [
        c("Complete", "False", "BackupFailed", "Backup delib-1 failed: there is nothing to restore from", generation=1),
        c("Failed", "True", "BackupFailed", "Backup delib-1 failed: there is nothing to restore from", generation=1),
        c("Progressing", "False", "Done", "finished", generation=1),
    ], src=[f"{RESTORE}:255", f"{BACKUP_STATUS}:67", f"{BACKUP_STATUS}:68", f"{BACKUP_STATUS}:59"], generation=1, observed=1,
        message="nothing to restore from"),
    Case("Restore", DEGRADED, [
        c("Complete", "False", "JobFailed", "Job restore-delib-1 failed", generation=1),
        c("Failed", "True", "JobFailed", "Job restore-delib-1 failed", generation=1),
        c("Progressing", "False", "Done", "finished", generation=1),
    ], src=[f"{RESTORE}:478", f"{BACKUP_STATUS}:67", f"{BACKUP_STATUS}:68", f"{BACKUP_STATUS}:59"], generation=1, observed=1),

    # --- MigrationPlan -------------------------------------------------------------------
    Case("MigrationPlan", HEALTHY, [
        c("Complete", "True", "AllDone", "40 done, 0 failed, 0 left of 40"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 1"),
        c("Progressing", "False", "Finished", "40 of 40 sites done, 0 failed"),
    ], src=[f"{WAVE_PLAN}:289", f"{WAVE_PLAN}:306", f"{MODEL_WAVE}:234"], message="40 done"),
    Case("MigrationPlan", PROGRESSING, [
        c("Complete", "False", "SitesLeft", "10 done, 0 failed, 30 left of 40"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 1"),
        c("Progressing", "True", "Running", "wave 2: 3 in flight, 27 pending, 10 done, 0 failed"),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE_PLAN}:356"], message="wave 2"),
    Case("MigrationPlan", PROGRESSING, [
        c("Complete", "False", "SitesLeft", "10 done, 0 failed, 30 left of 40"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 1"),
        c("Progressing", "False", "OutsideWindow", "outside the window 22:00\u201305:00 Europe/Brussels: no new site starts; 0 in flight finish"),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE_PLAN}:348", f"{WAVE}:141"]),
    # Same reason, but the window cannot be read (progress.rs:170): a person must fix it.
    Case("MigrationPlan", DEGRADED, [
        c("Complete", "False", "SitesLeft", "0 done, 0 failed, 40 left of 40"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 1"),
        c("Progressing", "False", "OutsideWindow", "spec.window.timeZone: \"Europe/Nowhere\" is not a known time zone: no new site starts; 0 in flight finish"),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE_PLAN}:348", f"{MODEL_WAVE_PROGRESS}:134"],
        message="not a known time zone"),
    Case("MigrationPlan", DEGRADED, [
        c("Complete", "False", "SitesLeft", "10 done, 1 failed, 29 left of 40"),
        c("Failed", "True", "ThresholdReached", "1 failed, the threshold is 1"),
        c("Progressing", "True", "Halted", "1 sites failed, the failure threshold is 1: no new site starts; 2 in flight finish."),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_ACT}:121", f"{WAVE_PLAN}:332"], message="1 failed, the threshold is 1"),
    Case("MigrationPlan", DEGRADED, [
        c("Complete", "False", "SitesLeft", "0 done, 0 failed, 0 left of 0"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 1"),
        c("Progressing", "False", "InvalidSpec", "spec.waves: ..."),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE}:79"]),
    Case("MigrationPlan", SUSPENDED, [
        c("Complete", "False", "SitesLeft", "10 done, 0 failed, 30 left of 40"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 1"),
        c("Progressing", "True", "Paused", "spec.paused: no new site starts; 1 in flight finish"),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE_PLAN}:340"], spec={"paused": True}, message="spec.paused"),

    # --- ReleaseRollout ------------------------------------------------------------------
    Case("ReleaseRollout", HEALTHY, [
        c("Complete", "True", "AllDone", "120 done, 0 failed, 0 left of 120"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 3"),
        c("Progressing", "False", "Finished", "120 of 120 sites done, 0 failed"),
    ], src=[f"{WAVE_PLAN}:289", f"{WAVE_PLAN}:306", f"{MODEL_WAVE}:234"]),
    # Finished with failures below the threshold: Complete=True, so Healthy (the count is in
    # the message; the failed sites are in status.siteProgress).
    Case("ReleaseRollout", HEALTHY, [
        c("Complete", "True", "DoneWithFailures", "118 done, 2 failed, 0 left of 120"),
        c("Failed", "False", "BelowThreshold", "2 failed, the threshold is 3"),
        c("Progressing", "False", "Finished", "118 of 120 sites done, 2 failed"),
    ], src=[f"{WAVE_PLAN}:291", f"{WAVE_PLAN}:306", f"{MODEL_WAVE}:234"], message="2 failed"),
    Case("ReleaseRollout", PROGRESSING, [
        c("Complete", "False", "SitesLeft", "30 done, 0 failed, 90 left of 120"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 3"),
        c("Progressing", "True", "Running", "wave 3: 5 in flight, 85 pending, 30 done, 0 failed"),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE_PLAN}:356"]),
    Case("ReleaseRollout", DEGRADED, [
        c("Progressing", "False", "NoProduct", "spec.product: there is no Product delib; nothing is upgraded"),
    ], src=[f"{WAVE}:49"], message="there is no Product"),
    Case("ReleaseRollout", SUSPENDED, [
        c("Complete", "False", "SitesLeft", "30 done, 0 failed, 90 left of 120"),
        c("Failed", "False", "BelowThreshold", "0 failed, the threshold is 3"),
        c("Progressing", "False", "Paused", "spec.paused: no new site starts; 0 in flight finish"),
    ], src=[f"{WAVE_PLAN}:285", f"{WAVE_PLAN}:306", f"{WAVE_PLAN}:340"], spec={"paused": True}),

    # --- ProvisioningRequest -------------------------------------------------------------
    Case("ProvisioningRequest", HEALTHY, [
        c("Approved", "True", "Approved", "approved by mutu"),
        c("Fulfilled", "True", "SiteReady", "site tenant-mons/web is Ready at https://www.mons.be"),
        c("Ready", "True", "SiteReady", "site tenant-mons/web is Ready at https://www.mons.be"),
        c("Validated", "True", "Valid", "web for www.mons.be: entitled, under the member's domains, names free, within quota"),
    ], src=[f"{REQUEST}:248", f"{REQUEST}:102", f"{REQUEST}:151"], message="is Ready at"),
    Case("ProvisioningRequest", PROGRESSING, [
        c("Fulfilled", "False", "SiteNotReady", "site tenant-mons/web is being set up: waiting for the site-creation Job"),
        c("Ready", "False", "SiteNotReady", "site tenant-mons/web is being set up: waiting for the site-creation Job"),
    ], src=[f"{REQUEST}:108"]),
    Case("ProvisioningRequest", PROGRESSING, [
        c("Approved", "True", "Approved", "approved by mutu"),
        c("Fulfilled", "False", "Creating", "creating site tenant-mons/web"),
        c("Ready", "False", "Creating", "creating site tenant-mons/web"),
        c("Validated", "True", "Valid", "..."),
    ], src=[f"{REQUEST}:248", f"{REQUEST}:265", f"{REQUEST}:151"]),
    # Its only problem is a tenant not Ready yet (e.g. created in the same sync).
    Case("ProvisioningRequest", PROGRESSING, [
        c("Approved", "False", "NotValid", "the request cannot be fulfilled as it is: MemberTenant mons is not Ready"),
        c("Fulfilled", "False", "NotValid", "the request cannot be fulfilled as it is: MemberTenant mons is not Ready"),
        c("Ready", "False", "NotValid", "the request cannot be fulfilled as it is: MemberTenant mons is not Ready"),
        c("Validated", "False", "TenantNotReady", "MemberTenant mons is not Ready; its sites can be created once it is"),
    ], src=[f"{REQUEST}:286", f"{REQUEST}:252", f"{MODEL_PROVISIONING}:146"],
        status={"reasons": [{"code": "TenantNotReady", "subject": "mons", "message": "MemberTenant mons is not Ready"}]}),
    Case("ProvisioningRequest", DEGRADED, [
        c("Approved", "False", "NotValid", "the request cannot be fulfilled as it is: ...; edit the request"),
        c("Fulfilled", "False", "NotValid", "the request cannot be fulfilled as it is: ...; edit the request"),
        c("Ready", "False", "NotValid", "the request cannot be fulfilled as it is: the member's quota allows 3 site(s) and it has 3; edit the request"),
        c("Validated", "False", "QuotaExceeded", "the member's quota allows 3 site(s) and it has 3"),
    ], src=[f"{REQUEST}:286", f"{REQUEST}:252", f"{MODEL_PROVISIONING}:249"],
        status={"reasons": [{"code": "QuotaExceeded", "subject": "sites", "message": "..."}]},
        message="edit the request"),
    Case("ProvisioningRequest", DEGRADED, [
        c("Ready", "False", "NotValid", "the request cannot be fulfilled as it is: ...; edit the request"),
        c("Validated", "False", "TenantNotReady", "..."),
    ], src=[f"{REQUEST}:252", f"{MODEL_PROVISIONING}:146", f"{MODEL_ADMISSION}:132"],
        status={"reasons": [{"code": "TenantNotReady", "message": "..."},
                            {"code": "HostnameTaken", "subject": "www.mons.be", "message": "..."}]}),
    Case("ProvisioningRequest", DEGRADED, [
        c("Approved", "False", "Denied", "denied by alice: no budget this year"),
        c("Fulfilled", "False", "Denied", "denied by alice: no budget this year"),
        c("Ready", "False", "Denied", "denied by alice: no budget this year"),
    ], src=[f"{REQUEST}:241", f"{REQUEST}:242"], message="denied by alice"),
    Case("ProvisioningRequest", DEGRADED, [
        c("Ready", "False", "SiteDeleted", "site tenant-mons/web was deleted; the request does not create it again"),
    ], src=[f"{REQUEST}:133"]),
    Case("ProvisioningRequest", SUSPENDED, [
        c("Approved", "False", "WaitingForApprover", "waiting for an approver: mutu request approve tenant-mons/web (or deny it with a reason)"),
        c("Fulfilled", "False", "NotApproved", "waiting for approval"),
        c("Ready", "False", "NotApproved", "waiting for approval"),
        c("Validated", "True", "Valid", "..."),
    ], src=[f"{REQUEST}:275", f"{REQUEST}:282", f"{REQUEST}:151"],
        message="mutu request approve tenant-mons/web"),
    Case("ProvisioningRequest", SUSPENDED, [
        c("Approved", "True", "Approved", "approved by alice"),
        c("Ready", "False", "AwaitingGitOps", "add the site to the GitOps repository (mutu request render tenant-mons/web)"),
    ], src=[f"{REQUEST}:248", f"{REQUEST}:256"], message="GitOps repository"),
]


# --- Running the script ---------------------------------------------------------------------

def runtimes():
    """(name, LuaRuntime class): Lua 5.1 (gopher-lua's dialect) and 5.4, as lupa ships them."""
    found = []
    for name in ("lua51", "lua54"):
        try:
            module = importlib.import_module(f"lupa.{name}")
        except ImportError:
            continue
        found.append((name, module.LuaRuntime))
    if not found:
        from lupa import LuaRuntime
        found.append(("default", LuaRuntime))
    return found


def to_lua(lua, value):
    """`value` as Lua data, all the way down (lists 1-based; None keys left out)."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = to_lua(lua, item)
        return table
    if isinstance(value, (list, tuple)):
        table = lua.table()
        for index, item in enumerate(value, 1):
            table[index] = to_lua(lua, item)
        return table
    return value


class Health:
    """The health script in one Lua runtime, with only what Argo CD's sandbox offers."""

    def __init__(self, runtime_class):
        self.lua = runtime_class()
        self.lua.execute(
            "io, os, debug, require, dofile, loadfile, package = nil, nil, nil, nil, nil, nil, nil")
        self.chunk = self.lua.compile(SCRIPT.read_text(encoding="utf-8"))
        self.version = self.lua.eval("_VERSION")

    def __call__(self, obj):
        self.lua.globals().obj = to_lua(self.lua, obj)
        hs = self.chunk()
        return hs["status"], hs["message"]


def check_cases(health, verbose=False):
    failures = []
    for case in CASES:
        try:
            status, message = health(case.obj)
        except Exception as e:  # a Lua error is a failed case, reported with the others
            failures.append(f"{case}: Lua error: {e}")
            continue
        if verbose:
            print(f"  {status:<11} {case}: {message}")
        if status != case.expect:
            failures.append(f"{case}: got {status} ({message})")
        elif not isinstance(message, str) or not message:
            failures.append(f"{case}: no message")
        elif case.message is not None and case.message not in message:
            failures.append(f"{case}: message {message!r} lacks {case.message!r}")
    return failures


def report(failures):
    assert not failures, "\n".join(failures)


# --- Tests ----------------------------------------------------------------------------------

def test_every_case_in_lua_5_1_and_5_4():
    failures = []
    for name, runtime_class in runtimes():
        try:
            health = Health(runtime_class)
        except Exception as e:  # e.g. a syntax error of this Lua version
            failures.append(f"{name}: {SCRIPT.name} does not load: {e}")
            continue
        failures += [f"{name}: {f}" for f in check_cases(health)]
    report(failures)


def test_the_script_is_plain_lua_5_1():
    text = SCRIPT.read_text(encoding="utf-8")
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    failures = []
    for pattern, what in [
        (r"\bgoto\b", "goto (Lua 5.2)"),
        (r"::\w+::", "a label (Lua 5.2)"),
        (r"//", "integer division (Lua 5.3)"),
        (r"<const>|<close>", "attributes (Lua 5.4)"),
        (r"\butf8\.|\btable\.unpack\b|\btable\.move\b", "a library of Lua 5.2+"),
        (r"\bstring\.(?!find\b|format\b)\w+", "a string function other than find and format"),
        (r"\b(io|os|debug|require|dofile|loadfile)\b", "what Argo CD's sandbox does not offer"),
    ]:
        for match in re.finditer(pattern, code):
            line = code.count("\n", 0, match.start()) + 1
            failures.append(f"{SCRIPT.name}:{line}: {what}: {match.group(0)}")
    report(failures)


def _render_module():
    spec = importlib.util.spec_from_file_location("render_argocd_cm", RENDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argocd_cm_yaml_is_rendered_from_the_script():
    render = _render_module()
    current = YAML.read_text(encoding="utf-8")
    assert current == render.expected(), (
        f"{YAML.relative_to(ROOT)} is out of date: run python3 {RENDER.relative_to(ROOT)}")
    script = SCRIPT.read_text(encoding="utf-8")
    for kind in render.kinds():
        key = f"  resource.customizations.health.hosting.imio.be_{kind}: |\n"
        assert key in current, f"no health check for {kind}"
    assert current.count("resource.customizations.health.") == len(render.kinds())
    assert script.strip(), "empty script"


def test_every_kind_has_healthy_progressing_and_degraded_cases():
    kinds = _render_module().kinds()
    failures = []
    for kind in kinds:
        seen = {case.expect for case in CASES if case.kind == kind}
        for wanted in (HEALTHY, PROGRESSING, DEGRADED):
            if wanted not in seen:
                failures.append(f"{kind}: no {wanted} case")
    failures += [f"{case}: not a mutu kind" for case in CASES if case.kind not in kinds]
    report(failures)


def test_cases_cite_the_code():
    """Every reason of a case is a string literal of a file it cites, at a line that exists."""
    failures = []
    for case in CASES:
        if case.src is None:
            continue
        texts = []
        for cite in case.src:
            path, _, line = cite.partition(":")
            file = ROOT / path
            if not file.is_file():
                failures.append(f"{case}: {cite}: no such file")
                continue
            text = file.read_text(encoding="utf-8")
            if not line.isdigit() or not 1 <= int(line) <= text.count("\n") + 1:
                failures.append(f"{case}: {cite}: no such line")
            texts.append(text)
        for reason in case.reasons():
            if not any(f'"{reason}"' in text for text in texts):
                failures.append(f"{case}: reason {reason} is in none of {', '.join(case.src)}")
    report(failures)


TESTS = [
    test_every_case_in_lua_5_1_and_5_4,
    test_the_script_is_plain_lua_5_1,
    test_argocd_cm_yaml_is_rendered_from_the_script,
    test_every_kind_has_healthy_progressing_and_degraded_cases,
    test_cases_cite_the_code,
]


def main(argv):
    verbose = "-v" in argv[1:]
    for name, runtime_class in runtimes():
        try:
            health = Health(runtime_class)
        except Exception as e:
            print(f"{name}: {SCRIPT.name} does not load: {e}")
            continue
        print(f"{name} ({health.version}): {len(CASES)} cases")
        if verbose:
            check_cases(health, verbose=True)
    failed = 0
    for test in TESTS:
        try:
            test()
        except Exception as e:  # AssertionError, or anything unexpected: a failure either way
            failed += 1
            print(f"FAIL {test.__name__}\n{e}")
        else:
            print(f"ok   {test.__name__}")
    print(f"{len(TESTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
