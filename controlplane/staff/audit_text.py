"""The audit log in words: a readable name for each action code and its details as
text, in the staff member's language, and cells a spreadsheet will not run.

An action's name is the catalogue's ``admin_audit_action_<code>``; a code without
one (a new action, or one from a later version) is shown as the code itself, so
nothing is hidden. Details are ``label: value`` pairs, the label from
``admin_audit_detail_<key>`` when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.base.i18n import Catalog

#: What a spreadsheet treats as the start of a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class AuditText:
    """Action names and details of audit entries in one language."""

    def __init__(self, catalog: Catalog, lang: str) -> None:
        self._catalog = catalog
        self._lang = lang

    def action(self, code: str) -> str:
        key = f"admin_audit_action_{code}"
        return self._catalog.get(key, self._lang) if key in self._catalog else code

    def details(self, details: Mapping[str, Any] | None) -> str:
        """``Account: carla; Rol: supervisor``: every detail, in key order."""
        if not details:
            return ""
        parts = [
            f"{self._label(key)}: {self._value(value)}"
            for key, value in sorted(details.items())
        ]
        return "; ".join(parts)

    def _label(self, key: str) -> str:
        name = f"admin_audit_detail_{key}"
        return self._catalog.get(name, self._lang) if name in self._catalog else key

    def _value(self, value: Any) -> str:
        if value is None or value == [] or value == {}:
            return "-"
        if isinstance(value, bool):
            return self._catalog.get(f"admin_audit_{str(value).lower()}", self._lang)
        if isinstance(value, list | tuple):
            return ", ".join(self._value(v) for v in value)
        if isinstance(value, dict):
            inner = (f"{k} {self._value(v)}" for k, v in sorted(value.items()))
            return ", ".join(inner)
        return str(value)


def spreadsheet_safe(cell: str) -> str:
    """``cell``, with a leading ``'`` where a spreadsheet would read a formula."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell
