"""Dutch-first translations. Catalogs are TOML files in ``web/i18n/``, one per area,
each key a table with ``nl`` and ``en``; a key defined twice stops the start."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from aiohttp import web

from beeldbel.assets import I18N

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
LANG_COOKIE = "bb_lang"
CATALOG_DIR = I18N


class Catalog:
    """All messages, by key then language."""

    def __init__(self, messages: dict[str, dict[str, str]]) -> None:
        self._messages = messages

    @classmethod
    def load(cls, directory: Path = CATALOG_DIR) -> Catalog:
        messages: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.toml")):
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            for key, value in data.items():
                if key in messages:
                    raise ValueError(f"translation key {key!r} is defined twice")
                missing = [lang for lang in LANGUAGES if lang not in value]
                if missing:
                    raise ValueError(
                        f"translation {key!r} in {path.name} lacks {missing}"
                    )
                messages[key] = value
        return cls(messages)

    def get(self, key: str, lang: str, **params: Any) -> str:
        entry = self._messages.get(key)
        if entry is None:
            return key
        text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
        return text.format(**params) if params else text

    def __contains__(self, key: str) -> bool:
        return key in self._messages


def request_language(request: web.Request) -> str:
    """``?lang=`` wins, then the cookie the language switch set, then Dutch."""
    lang = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


CATALOG = web.AppKey("catalog", Catalog)
