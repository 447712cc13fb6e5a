"""Server-rendered pages: Jinja2 set-up and the values every template gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from controlplane.csrf import csrf_token
from controlplane.i18n import LANG_COOKIE, request_language
from controlplane.state import CATALOG, CONFIG, DESK

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
STAFF = web.RequestKey("staff", object)


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(("html", "xml"), default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["app_name"] = "Beeldbel"


def page_context(request: web.Request) -> dict[str, Any]:
    """What every template can use: language, ``t()``, ``csrf_token()``, desk, staff."""
    lang = request_language(request)
    catalog = request.app[CATALOG]

    def t(key: str, **params: Any) -> str:
        return catalog.get(key, lang, **params)

    def csrf() -> str:
        return csrf_token(request)

    def static_url(path: str) -> str:
        return str(request.app.router["static"].url_for(filename=path))

    return {
        "static_url": static_url,
        "lang": lang,
        "other_lang": "en" if lang == "nl" else "nl",
        "t": t,
        "csrf_token": csrf,
        "request": request,
        "desk": request.app[DESK].current,
        "staff": request.get(STAFF),
        "config": request.app[CONFIG],
    }


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """Render ``template``; remembers a language chosen with ``?lang=``."""
    response = aiohttp_jinja2.render_template(
        template, request, {**page_context(request), **(context or {})}, status=status
    )
    chosen = request.query.get("lang")
    if chosen in ("nl", "en") and request.cookies.get(LANG_COOKIE) != chosen:
        response.set_cookie(
            LANG_COOKIE, chosen, max_age=365 * 86400, path="/", samesite="Lax"
        )
    return response
