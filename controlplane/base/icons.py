"""Inline SVG icons for the templates, ``{{ icon('mic') }}``.

The files are lucide-static's (npm, ISC), copied into web/static/icons/ by
scripts/vendor_icons.py. Inlined rather than linked so they take the button's
text colour (``currentColor``) and cost no request. Each is hidden from
assistive technology: the button's visible text is its name.
"""

from __future__ import annotations

import functools
import re

import markupsafe

from beeldbel.assets import STATIC

_OPEN_TAG = re.compile(r"<svg\s+class=\"[^\"]*\"")


@functools.cache
def _svg(name: str) -> str:
    path = STATIC / "icons" / f"{name}.svg"
    if not path.is_file():
        raise KeyError(f"no icon {name!r} in web/static/icons: {name}")
    text = path.read_text(encoding="utf-8")
    svg = text[text.index("<svg") :]
    opening = f'<svg class="icon icon-{name}" aria-hidden="true" focusable="false"'
    return " ".join(_OPEN_TAG.sub(opening, svg, count=1).split())


def icon(name: str) -> markupsafe.Markup:
    """The icon ``name`` as inline SVG; KeyError when it is not shipped."""
    # our own shipped files, checked against the npm package by a test
    return markupsafe.Markup(_svg(name))  # noqa: S704
