"""The control plane's probes for load balancers and orchestrators.

``/healthz``: the process serves HTTP (touches nothing else). ``/readyz``: it can
serve requests, i.e. its database answers and has the shipped schema. Neither needs
a login or CSRF token, neither is rate limited, and neither writes a log line per
request at info (see :mod:`controlplane.app.middlewares`).
"""

from __future__ import annotations

from aiohttp import web

from controlplane.storage.database import DB
from controlplane.storage.readiness import not_ready_reason

PROBE_PATHS = frozenset({"/healthz", "/readyz"})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    # a probe's answer, not an error: the same JSON whatever the caller accepts
    reason = await not_ready_reason(request.app[DB])
    if reason is not None:
        return web.json_response(
            {"status": "not_ready", "reason": reason},
            status=503,
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
