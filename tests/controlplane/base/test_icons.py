"""The call page's icons: copies of the npm package's files, inlined by icon()."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from controlplane.base.icons import icon

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location(
    "vendor_icons", ROOT / "scripts" / "vendor_icons.py"
)
assert spec
assert spec.loader
vendor_icons = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vendor_icons)


@pytest.mark.parametrize("name", vendor_icons.ICONS)
def test_each_icon_is_the_npm_package_file(name: str) -> None:
    shipped = (vendor_icons.TARGET / f"{name}.svg").read_bytes()
    assert shipped == (vendor_icons.PACKAGE / "icons" / f"{name}.svg").read_bytes()


def test_only_the_listed_icons_ship_with_the_licence() -> None:
    shipped = {path.stem for path in vendor_icons.TARGET.glob("*.svg")}
    assert shipped == set(vendor_icons.ICONS)
    licence = (vendor_icons.TARGET / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("ISC License")


def test_icon_is_inline_svg_hidden_from_assistive_technology() -> None:
    markup = str(icon("mic-off"))
    assert markup.startswith('<svg class="icon icon-mic-off" aria-hidden="true"')
    assert 'focusable="false"' in markup
    assert "<!--" not in markup
    assert "lucide" not in markup
    assert 'stroke="currentColor"' in markup


def test_an_unknown_icon_is_an_error() -> None:
    with pytest.raises(KeyError, match="no-such-icon"):
        icon("no-such-icon")
