"""Staff: sign-in with a second factor, sessions, accounts, the console that
works the queue and the admin pages.

Offers the rest the staff guard (:func:`require_staff`, :class:`StaffUser`), the
readable labels of codes and times (:class:`Labels`) and :func:`setup` for the
routes.
"""

from aiohttp import web

from controlplane.staff import (
    accounts,
    admin,
    api_keys_page,
    audit_page,
    console,
    login,
    phone_entry,
    request_page,
    webhooks_page,
)
from controlplane.staff.auth import StaffUser, require_staff
from controlplane.staff.labels import Labels


def setup(app: web.Application) -> None:
    """The routes and background work of staff."""
    login.setup(app)
    console.setup(app)
    phone_entry.setup(app)
    request_page.setup(app)
    accounts.setup(app)
    admin.setup(app)
    api_keys_page.setup(app)
    audit_page.setup(app)
    webhooks_page.setup(app)


__all__ = ["Labels", "StaffUser", "require_staff", "setup"]
