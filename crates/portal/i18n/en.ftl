# The members' portal and the maintenance page, in English.
# Every message is in fr.ftl, de.ftl and en.ftl, with the same variables:
# the test `every_key_is_in_every_language_and_used` in src/i18n.rs checks it.

## The frame of every page

skip-link = Skip to content
nav-main = Main navigation
nav-home = Home
signed-in-as = Signed in as { $user }
language-switch = Portal language

## Page titles

title-home = Home
title-sites = My sites
title-ask = Request a site
title-request = My request
title-approvals = Requests to approve
title-forbidden = Access denied
title-not-found = Not found
title-unavailable = Service unavailable
title-sign-in = Sign-in required
title-identity-refused = Identity refused
title-identity-unreadable = Unreadable identity
title-form-refused = Form refused
title-form-unreadable = Unreadable form
title-decision = Decision
title-error = Error

## Home

home-members = My members
home-ask = request a site
home-approvals = Approvals
home-approvals-link = Requests to approve
home-no-member = Your account is not an administrator of any member. Ask the cooperative's support for access.

## A member's pages

member-nav = Member pages
member-nav-sites = My sites
member-nav-ask = Request a site

## My sites

sites-none = Your member has no site yet.
sites-caption = The member's sites
sites-address = Address
sites-product = Product
sites-release = Version
sites-state = State
sites-certificate = Certificate
sites-backup = Last backup
site-online = Online
site-deleting = Being deleted
site-preparing = Being prepared
site-certificate-expires = expires on { $date }
site-no-backup = none
sites-requests = My requests
request-state-online = site online
request-state-denied = denied
request-state-approved = approved, being set up
request-state-to-correct = to be corrected
request-state-pending = awaiting approval

## Request a site

ask-all-used = Your member already uses all the sites its contract provides; contact the cooperative to add more.
ask-product = Product
ask-product-option = { $product } ({ $used } of { $total } used)
ask-address = Site address
ask-address-hint = An address under your member's domains ({ $domains }), for example { $example }.
ask-alias = Other address (optional)
ask-language = Site language
ask-comment = Why this site? (optional)
ask-submit = Send the request
ask-no-product = Choose a product.
ask-invalid-address = “{ $address }” is not a valid address: lower-case letters, digits, hyphens and dots, for example www.commune.be.
ask-no-address = Give the site's address.
ask-rejected = The request was refused as it stands: { $message }
ask-name-taken = A request with the same name has just been made; send the form once more.

## My request

request-for = Site request for { $hosts }.
step-checks = Checks:
checks-running = in progress…
checks-passed = passed
checks-failed = to be corrected
step-decision = Decision:
decision-automatic = approved automatically
decision-approved-by = approved by { $who }
decision-denied-by = denied by { $who }
decision-waiting = waiting for an approver
step-site = Going live:
site-ready = your site is online: { $link }
site-awaiting-gitops = the cooperative is adding the site to its configuration
site-creating = creating the site…
site-deleted = the site has since been deleted
request-in-progress = This page does not update by itself.
request-refresh = Refresh the page
request-reasons = Why the request cannot go through
request-new = Make a new request

## Why a request cannot go through

reason-no-tenant = This request was not made in a member's space.
reason-tenant-not-ready = Your member's space is not ready yet; try again in a few minutes or contact support.
reason-unknown-product = The product “{ $product }” is not in the catalogue.
reason-not-entitled = Your member has not subscribed to the product “{ $product }”; contact the cooperative to add it to its contract.
reason-over-entitlement = Your member already has all the “{ $product }” sites its contract provides; delete one or ask for an extension.
reason-foreign-hostname = The address “{ $address }” is not under your member's domains.
reason-foreign-hostname-domains = The address “{ $address }” is not under your member's domains ({ $domains }); choose an address under one of them.
reason-hostname-taken = The address “{ $address }” is already used by another site; choose another one.
reason-site-name-taken = Your member already has a site named “{ $name }”; choose another name.
reason-invalid-site-name = The name “{ $name }” is not suitable: lower-case letters, digits and hyphens, 40 characters at most.
reason-replicas-out-of-range = The number of instances requested ({ $replicas }) is not allowed for this product.
# $resource: what the quota lacks (sites, CPU, memory or storage, or something else).
reason-quota-exceeded = Your member's quota does not allow one more site ({ $resource ->
        [sites] number of sites
        [CPU] processor
        [memory] memory
        [storage] storage
       *[other] resources
    }); contact the cooperative.
reason-denied = Request denied by { $who }.
reason-denied-why = Request denied by { $who }: { $why }

## Requests to approve

approvals-approved = Request { $request } approved.
approvals-denied = Request { $request } denied.
approvals-none = No request is waiting for a decision.
approvals-product = Product: { $product }
approvals-addresses = Addresses: { $hosts }
approvals-comment = Reason: { $comment }
approvals-approve = Approve { $request }
approvals-failed-checks = This request does not pass its checks:
approvals-deny-reason = Reason for the denial (the member will read it)
approvals-deny = Deny { $request }

## Refusals and errors

back-home = Back to the home page
back-approvals = Back to the requests
error-forbidden = You do not have access to this page. If you think this is a mistake, contact the cooperative's support.
error-not-found = This page does not exist, or no longer does.
error-unavailable = The service is temporarily unavailable; try again in a moment.
error-internal = The portal could not show this page. Try again; if it persists, contact the cooperative's support.
error-sign-in = This portal is used through the cooperative's sign-in: open it from its usual address.
error-reserved-name = Your account or one of its groups has the name “{ $name }”, which Kubernetes reserves for itself: the portal never accepts it. Contact the cooperative's support to correct your account.
error-repeated-header = The cooperative's sign-in sent the header { $header } more than once: the portal does not choose between them. Open the portal from its usual address; if it persists, contact the cooperative's support.
error-invalid-name = The cooperative's sign-in sent, in the header { $header }, the name { $name }, which is not an accepted name (letters, digits and . _ @ + - : / only, separated by commas). Contact the cooperative's support to correct your account.
error-cross-site = This form does not come from the portal; start again from the portal.
error-token-missing = This form does not come from the portal: it has no security token. Open the page again from the portal and send the form again.
error-token-invalid = This form was not prepared for you, or the portal has restarted since. Open the page again from the portal and send the form again.
error-token-expired = This form has expired: it was opened more than { $hours } hours ago. Open the page again and send the form again.
error-form-unreadable = This form could not be read; open the page again and send it again.
error-approvers-only = This page is reserved for the cooperative's approvers.
error-no-decision = Choose to approve or to deny.
decision-forbidden = You are not an approver: only the cooperative decides on requests, and a member never on its own.
decision-changed = The request has changed in the meantime (the member may have edited it); read it again before deciding.
decision-not-valid = This request cannot be approved: it does not pass its checks.
decision-no-reason = Give the reason for the denial: the member will read it.
decision-already = This request has already been decided.
decision-gone = This request no longer exists.
decision-failed = The decision could not be recorded ({ $why }).

## The maintenance page (mutu maintenance-page), which the public sees

maintenance-title = Site under maintenance
maintenance-this-site = This site is being moved or updated by the cooperative. It will be back in a few minutes.
maintenance-named-site = The site { $site } is being moved or updated by the cooperative. It will be back in a few minutes.
maintenance-retry = Please try again a little later.
