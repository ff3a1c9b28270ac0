"""The WSGI application of mutu's Plone images (`use = call:mutu_zope:make_app` in zope.ini).

Zope's own application (Zope2.Startup.run.make_wsgi_app), after making sure the admin user
exists: when PLONE_ADMIN_PASSWORD is set, the Zope root's user folder gets the user
PLONE_ADMIN_USER (default `admin`) with that password and the Manager role, created or updated
(nothing is written when it is already so). Replicas starting together retry on conflicts.
"""

import logging
import os
import time

log = logging.getLogger("mutu_zope")


def make_app(global_config, zope_conf, **_local):
    from Zope2.Startup.run import make_wsgi_app

    app = make_wsgi_app(global_config, zope_conf)
    ensure_admin(os.environ.get("PLONE_ADMIN_USER", "").strip() or "admin",
                 os.environ.get("PLONE_ADMIN_PASSWORD", ""))
    return app


def ensure_admin(name, password):
    if not password:
        log.info("PLONE_ADMIN_PASSWORD is not set: no admin user made")
        return
    import transaction
    import Zope2
    from ZODB.POSException import ConflictError

    for attempt in range(10):
        root = Zope2.app()
        try:
            users = root.acl_users
            user = users.getUser(name)
            if user is not None and "Manager" in user.getRoles() and \
                    user.authenticate(password, None):
                log.info("admin user %r is in place", name)
                transaction.abort()
                return
            users._doAddUser(name, password, ["Manager"], [])
            transaction.commit()
            log.info("admin user %r %s", name, "updated" if user is not None else "created")
            return
        except ConflictError:
            transaction.abort()
            time.sleep(0.5 * (attempt + 1))
        finally:
            root._p_jar.close()
    raise RuntimeError(f"could not write the admin user {name!r}: conflicts")
