"""The WSGI application of mutu's Plone images (`use = call:mutu_zope:make_app` in zope.ini).

Zope's own application (Zope2.Startup.run.make_wsgi_app), after making sure the admin user
exists: when PLONE_ADMIN_PASSWORD is set, the Zope root's user folder gets the user
PLONE_ADMIN_USER (default `admin`) with that password and the Manager role, created or updated;
nothing is written when it is already so. Replicas starting together retry on conflicts.
The root user folder is Zope's own until a Plone site is created, a PluggableAuthService after
(Plone replaces it): both are handled.
"""

import logging
import os
import time

log = logging.getLogger("mutu_zope")
MANAGER = "Manager"


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
            done = ensure(root.acl_users, name, password)
            if done:
                transaction.commit()
                log.info("admin user %r: %s", name, done)
            else:
                transaction.abort()
                log.info("admin user %r is in place", name)
            user = root.acl_users.getUser(name)
            if user is None or MANAGER not in user.getRoles() or \
                    not password_ok(root.acl_users, user, name, password):
                raise RuntimeError(f"the admin user {name!r} could not be set up")
            return
        except ConflictError:
            transaction.abort()
            time.sleep(0.5 * (attempt + 1))
        finally:
            root._p_jar.close()
    raise RuntimeError(f"could not write the admin user {name!r}: conflicts")


def ensure(users, name, password):
    """What was changed ('' when nothing)."""
    user = users.getUser(name)
    if user is None:
        users._doAddUser(name, password, [MANAGER], [])
        return "created"
    changed = []
    if not password_ok(users, user, name, password):
        set_password(users, user, password)
        changed.append("password changed")
    if MANAGER not in user.getRoles():
        add_manager(users, user)
        changed.append("role Manager given")
    return ", ".join(changed)


def is_pas(users):
    return hasattr(getattr(users, "plugins", None), "listPlugins")


def password_ok(users, user, name, password):
    if not is_pas(users):
        return bool(user.authenticate(password, None))
    from Products.PluggableAuthService.interfaces.plugins import IAuthenticationPlugin

    for _id, plugin in users.plugins.listPlugins(IAuthenticationPlugin):
        try:
            if plugin.authenticateCredentials({"login": name, "password": password}):
                return True
        except Exception:  # a plugin that wants other credentials
            continue
    return False


def set_password(users, user, password):
    if not is_pas(users):
        roles = [r for r in user.getRoles() if r != "Authenticated"]
        users._doChangeUser(user.getUserName(), password, roles, user.getDomains())
        return
    # Plone's user managers (Products.PlonePAS), else PAS's own ZODBUserManager.
    managers = []
    try:
        from Products.PlonePAS.interfaces.plugins import IUserManagement

        managers = [m for _id, m in users.plugins.listPlugins(IUserManagement)]
    except (ImportError, KeyError):  # KeyError: a plugin type this PAS does not know
        pass
    managers += [m for m in users.objectValues()
                 if hasattr(m, "updateUserPassword") and m not in managers]
    for manager in managers:
        try:
            if hasattr(manager, "doChangeUser"):
                manager.doChangeUser(user.getId(), password)
            else:
                manager.updateUserPassword(user.getId(), password)
            return
        except (KeyError, RuntimeError):  # not one of this manager's users
            continue
    raise RuntimeError(f"no user manager of the root user folder knows {user.getId()!r}")


def add_manager(users, user):
    if not is_pas(users):
        roles = [r for r in user.getRoles() if r != "Authenticated"] + [MANAGER]
        users._doChangeUser(user.getUserName(), None, roles, user.getDomains())
        return
    from Products.PluggableAuthService.interfaces.plugins import IRoleAssignerPlugin

    for _id, assigner in users.plugins.listPlugins(IRoleAssignerPlugin):
        if assigner.doAssignRoleToPrincipal(user.getId(), MANAGER):
            return
    raise RuntimeError("no role manager of the root user folder gives the role Manager")
