-- Argo CD health check for every mutu kind (group hosting.imio.be, version v1alpha1).
--
-- One script for all twelve kinds: docs/gitops/argocd-cm.yaml installs it once per kind
-- (generated from this file by docs/gitops/render-argocd-cm.py; do not edit the YAML by
-- hand). Tested by tests/gitops/run.sh against objects shaped like the ones the operators
-- write. Plain Lua 5.1, as Argo CD runs it (gopher-lua): no goto, no string library beyond
-- string.find and string.format.
--
-- Input: the object as `obj`. Output: `hs`, with `status` (Healthy, Progressing, Degraded
-- or Suspended) and `message`. The rules, in order:
--   1. no status yet, or a status older than metadata.generation: Progressing;
--   2. Failed=True or Degraded=True: Degraded;
--   3. Complete=True: Healthy (a Backup, Restore, MigrationPlan or ReleaseRollout that ended);
--   4. Ready=False: by its reason, from READY_FALSE below; a reason not listed there is
--      Degraded, so that nothing new hides a problem;
--   5. Ready=True: Healthy, unless the kind says more (READY_TRUE: a suspended member, a
--      site upgrading, an index reindexing);
--   6. no Ready (runs and plans until they end): by the Progressing condition's reason,
--      from PROGRESSING below.
-- The message is the deciding condition's message (or its reason when it has none).

local HEALTHY = "Healthy"
local PROGRESSING = "Progressing"
local DEGRADED = "Degraded"
local SUSPENDED = "Suspended"

local function find(conditions, type_)
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return c.type .. " is " .. tostring(c.status)
end

-- Certificate, Ready=False while the Secret does not serve (Missing, Unreadable,
-- KeyMismatch, NamesDiffer, Expired): the Issuing condition says whether a new certificate
-- is on its way (True: an order placed, a challenge published, waiting for the rate-limit
-- budget...) or not (False: Backoff after a failure, IssuerNotReady).
local function issuing(obj, conditions, ready)
  local c = find(conditions, "Issuing")
  if c == nil then
    return PROGRESSING, describe(ready)
  end
  if c.status == "True" then
    return PROGRESSING, describe(ready) .. "; " .. describe(c)
  end
  return DEGRADED, describe(ready) .. "; " .. describe(c)
end

-- ProvisioningRequest, Ready=False NotValid: the request needs editing, unless its only
-- problem is a MemberTenant that is not Ready yet (e.g. created in the same sync).
local function notValid(obj, conditions, ready)
  local reasons = obj.status.reasons
  if reasons == nil then
    return DEGRADED, describe(ready)
  end
  local waiting = false
  for _, r in ipairs(reasons) do
    if r.code ~= "TenantNotReady" then
      return DEGRADED, describe(ready)
    end
    waiting = true
  end
  if waiting then
    return PROGRESSING, describe(ready)
  end
  return DEGRADED, describe(ready)
end

-- ProvisioningRequest, Ready=False NotApproved: waiting for a person to approve; the
-- Approved condition says how.
local function notApproved(obj, conditions, ready)
  local approved = find(conditions, "Approved")
  if approved ~= nil then
    return SUSPENDED, describe(approved)
  end
  return SUSPENDED, describe(ready)
end

-- Ready=False, per kind: reason -> Argo CD status (or a function deciding it).
local READY_FALSE = {
  -- operators/tenant/src/validate.rs: refusals, each needs a change by a person.
  MemberTenant = {
    NameTooLong = DEGRADED,
    DomainConflict = DEGRADED,
    NamespaceTaken = DEGRADED,
  },
  -- operators/site/src/product.rs: a Product is only ever Ready=True (InCatalog).
  Product = {},
  -- operators/site/src/reconcile.rs and admission.rs.
  PloneSite = {
    Starting = PROGRESSING,
    Offline = PROGRESSING,
    Maintenance = SUSPENDED,
    Suspended = SUSPENDED,
    InvalidName = DEGRADED,
    NoTenant = DEGRADED,
    UnknownProduct = DEGRADED,
    NotEntitled = DEGRADED,
    OverEntitlement = DEGRADED,
    ForeignHostname = DEGRADED,
    HostnameTaken = DEGRADED,
    CatalogOrTenantMissing = DEGRADED,
  },
  -- operators/solr-index/src/reconcile.rs.
  SolrIndex = {
    UnknownConfigset = DEGRADED,
    NoSolrCredentials = DEGRADED,
    UnknownSolr = DEGRADED,
    SolrUnreachable = DEGRADED,
    SolrRefused = DEGRADED,
  },
  -- operators/certificate/src/reconcile.rs.
  Certificate = {
    IssuerNotFound = DEGRADED,
    NoTenant = DEGRADED,
    ForeignDomain = DEGRADED,
    WildcardNotSupported = DEGRADED,
    Missing = issuing,
    Unreadable = issuing,
    KeyMismatch = issuing,
    NamesDiffer = issuing,
    Expired = issuing,
  },
  -- operators/certificate/src/issuer.rs: ServerUnavailable is retried every 30 s.
  CertificateIssuer = {
    ServerUnavailable = PROGRESSING,
    InvalidSettings = DEGRADED,
    RegistrationRefused = DEGRADED,
    SecretNotFound = DEGRADED,
    InvalidCA = DEGRADED,
  },
  -- operators/backup/src/engine.rs.
  BackupPolicy = {
    InvalidWindow = DEGRADED,
    WindowTooSmall = DEGRADED,
  },
  -- operators/provisioning/src/check.rs (Ready mirrors Fulfilled).
  ProvisioningRequest = {
    SiteNotReady = PROGRESSING,
    Creating = PROGRESSING,
    NotApproved = notApproved,
    AwaitingGitOps = SUSPENDED,
    NotValid = notValid,
    Denied = DEGRADED,
    SiteDeleted = DEGRADED,
  },
}

-- Ready=True, per kind: what else to look at before saying Healthy (nil: Healthy).
local READY_TRUE = {
  -- spec.suspended: the member's sites are scaled to zero.
  MemberTenant = function(obj, conditions, ready)
    local c = find(conditions, "Suspended")
    if isTrue(c) then
      return SUSPENDED, describe(c)
    end
    return nil
  end,
  -- Serving the old release while the upgrade Job to the new one runs.
  PloneSite = function(obj, conditions, ready)
    local c = find(conditions, "Progressing")
    if isTrue(c) then
      return PROGRESSING, describe(c)
    end
    return nil
  end,
  -- The alias serves the old collection while a new configset version is reindexed.
  SolrIndex = function(obj, conditions, ready)
    local c = find(conditions, "Reindexed")
    if c ~= nil and c.status == "False" then
      if c.reason == "Reindexing" then
        return PROGRESSING, describe(c)
      end
      return DEGRADED, describe(c)
    end
    return nil
  end,
  -- Serving, but renewal keeps failing: still Healthy, with the failure in the message.
  Certificate = function(obj, conditions, ready)
    local c = find(conditions, "Issuing")
    if c ~= nil and c.status == "False" and c.reason == "Backoff" then
      return HEALTHY, describe(ready) .. "; renewal failing: " .. describe(c)
    end
    return nil
  end,
  -- Marked default while an older policy is the default. The controller never removes the
  -- Default condition, so it counts only while spec.default is still true.
  BackupPolicy = function(obj, conditions, ready)
    local c = find(conditions, "Default")
    if c ~= nil and c.status == "False" and c.reason == "AnotherDefault"
        and obj.spec ~= nil and obj.spec.default == true then
      return DEGRADED, describe(c)
    end
    return nil
  end,
}

-- MigrationPlan and ReleaseRollout, OutsideWindow: waiting for the window to open, or a
-- window that cannot be read (an unknown time zone), which needs a person.
local function outsideWindow(obj, conditions, c)
  if string.find(c.message or "", "outside the window", 1, true) == 1 then
    return PROGRESSING, describe(c)
  end
  return DEGRADED, describe(c)
end

local WAVE = {
  Running = PROGRESSING,
  OutsideWindow = outsideWindow,
  Paused = SUSPENDED,
  Halted = DEGRADED,
  InvalidSpec = DEGRADED,
  NoProduct = DEGRADED,
}

-- No Ready condition (runs and plans before they end): Progressing reason -> status.
local PROGRESSING_REASONS = {
  -- operators/backup/src/backup.rs.
  Backup = {
    Running = PROGRESSING,
    Queued = PROGRESSING,
    WaitingForRestore = PROGRESSING,
    WaitingForSite = PROGRESSING,
  },
  -- operators/backup/src/restore.rs.
  Restore = {
    WaitingForBackup = PROGRESSING,
    WaitingForRestore = PROGRESSING,
    Stopping = PROGRESSING,
    Restoring = PROGRESSING,
    Starting = PROGRESSING,
  },
  -- operators/wave/src/engine.rs.
  MigrationPlan = WAVE,
  ReleaseRollout = WAVE,
}

local function decide(verdict, obj, conditions, c)
  if type(verdict) == "function" then
    return verdict(obj, conditions, c)
  end
  return verdict, describe(c)
end

local function unseen(generation)
  if generation ~= nil then
    return string.format("mutu has not seen generation %d yet", generation)
  end
  return "mutu has not reported a status yet"
end

local function health(obj)
  local kind = obj.kind
  local generation = nil
  if obj.metadata ~= nil then
    generation = obj.metadata.generation
  end
  local status = obj.status
  if status == nil then
    return PROGRESSING, unseen(generation)
  end
  local conditions = status.conditions or {}

  -- The generation mutu last reported on: status.observedGeneration, or a condition's
  -- when newer (every condition written in a reconcile carries that reconcile's).
  local observed = status.observedGeneration
  for _, c in ipairs(conditions) do
    if c.observedGeneration ~= nil and (observed == nil or c.observedGeneration > observed) then
      observed = c.observedGeneration
    end
  end
  if generation ~= nil and (observed == nil or observed < generation) then
    return PROGRESSING, unseen(generation)
  end

  local failed = find(conditions, "Failed")
  if isTrue(failed) then
    return DEGRADED, describe(failed)
  end
  local degraded = find(conditions, "Degraded")
  if isTrue(degraded) then
    return DEGRADED, describe(degraded)
  end
  local complete = find(conditions, "Complete")
  if isTrue(complete) then
    return HEALTHY, describe(complete)
  end

  local ready = find(conditions, "Ready")
  if ready ~= nil then
    if ready.status == "True" then
      local more = READY_TRUE[kind]
      if more ~= nil then
        local s, m = more(obj, conditions, ready)
        if s ~= nil then
          return s, m
        end
      end
      return HEALTHY, describe(ready)
    end
    if ready.status == "False" then
      local verdict = nil
      if READY_FALSE[kind] ~= nil then
        verdict = READY_FALSE[kind][ready.reason]
      end
      if verdict == nil then
        return DEGRADED, describe(ready)
      end
      return decide(verdict, obj, conditions, ready)
    end
    return PROGRESSING, describe(ready)
  end

  local progressing = find(conditions, "Progressing")
  if progressing == nil then
    return PROGRESSING, "mutu has not reported progress yet"
  end
  local verdict = nil
  if PROGRESSING_REASONS[kind] ~= nil then
    verdict = PROGRESSING_REASONS[kind][progressing.reason]
  end
  if verdict == nil then
    if progressing.status == "True" then
      return PROGRESSING, describe(progressing)
    end
    return DEGRADED, describe(progressing)
  end
  return decide(verdict, obj, conditions, progressing)
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
