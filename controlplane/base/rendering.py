"""Server-rendered pages: Jinja2 set-up and the values every template gets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web

from beeldbel.assets import TEMPLATES
from controlplane.base.i18n import CATALOG, LANG_COOKIE, request_language
from controlplane.base.icons import icon
from controlplane.base.settings import CONFIG

STAFF = web.RequestKey("staff", object)

PageValues = Callable[[web.Request], dict[str, Any]]
"""What a package adds to every page (the CSRF token, the desk), wired by the app."""

_PAGE_VALUES = web.AppKey("page_values", list[PageValues])


def setup_templates(app: web.Application, *page_values: PageValues) -> None:
    app[_PAGE_VALUES] = list(page_values)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(("html", "xml"), default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["app_name"] = "Beeldbel"
    env.globals["icon"] = icon


def page_context(request: web.Request) -> dict[str, Any]:
    """What every template can use: language, ``t()``, staff, and the values the
    app wired in with :func:`setup_templates` (``csrf_token()``, desk)."""
    lang = request_language(request)
    catalog = request.app[CATALOG]

    def t(key: str, **params: Any) -> str:
        return catalog.get(key, lang, **params)

    def t_markup(key: str, **parts: Any) -> markupsafe.Markup:
        """A text with markup (e.g. links) in its ``{placeholders}``: the text is
        escaped, and so is every part that is not already ``Markup``."""
        return markupsafe.Markup.escape(catalog.get(key, lang)).format(**parts)

    def static_url(path: str) -> str:
        return str(request.app.router["static"].url_for(filename=path))

    values = {
        "static_url": static_url,
        "lang": lang,
        "other_lang": "en" if lang == "nl" else "nl",
        "t": t,
        "t_markup": t_markup,
        "request": request,
        "staff": request.get(STAFF),
        "config": request.app[CONFIG],
    }
    for extra in request.app[_PAGE_VALUES]:
        values.update(extra(request))
    return values


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
