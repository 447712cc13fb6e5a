"""Cookie settings in one place: ``Secure; HttpOnly; SameSite=Strict`` and the
``__Host-`` prefix whenever the desk is served over HTTPS."""

from __future__ import annotations

from aiohttp import web

from beeldbel.config import Config


def is_secure(config: Config) -> bool:
    return config.server.public_url.startswith("https://")


def cookie_name(config: Config, base: str) -> str:
    return f"__Host-{base}" if is_secure(config) else base


def set_cookie(
    response: web.StreamResponse,
    config: Config,
    base: str,
    value: str,
    *,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        cookie_name(config, base),
        value,
        max_age=max_age,
        path="/",
        secure=is_secure(config),
        httponly=True,
        samesite="Strict",
    )


def delete_cookie(response: web.StreamResponse, config: Config, base: str) -> None:
    response.del_cookie(
        cookie_name(config, base),
        path="/",
        secure=is_secure(config),
        httponly=True,
        samesite="Strict",
    )


def get_cookie(request: web.Request, config: Config, base: str) -> str | None:
    return request.cookies.get(cookie_name(config, base))
