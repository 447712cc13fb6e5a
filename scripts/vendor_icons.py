"""Copies the call page's icons from the npm package lucide-static (ISC) into
web/static/icons/, with its licence. Run after changing ICONS or the package's
version in package.json; tests/controlplane/base/test_icons.py checks the copies
still match node_modules.

The icons are copied, not served from node_modules, because web/ is what the
wheel ships: ``make run`` needs no npm.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "node_modules" / "lucide-static"
TARGET = ROOT / "web" / "static" / "icons"

#: The icons the templates use through ``icon(name)``.
ICONS = (
    "audio-lines",
    "maximize",
    "message-square-text",
    "mic",
    "mic-off",
    "minimize",
    "phone-off",
    "switch-camera",
    "video",
    "video-off",
)


def main() -> int:
    if not PACKAGE.is_dir():
        print("node_modules/lucide-static is missing: run make node-deps")
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    for old in TARGET.glob("*.svg"):
        if old.stem not in ICONS:
            old.unlink()
    for name in ICONS:
        shutil.copyfile(PACKAGE / "icons" / f"{name}.svg", TARGET / f"{name}.svg")
    shutil.copyfile(PACKAGE / "LICENSE", TARGET / "LICENSE")
    print(f"{len(ICONS)} icons copied to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
