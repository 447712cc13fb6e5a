"""Writes config.example.toml from beeldbel/config.py: every key, its default and the
``#:`` comment above it. Run it after adding a key."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beeldbel.config import Config, Secret, Topic  # noqa: E402

SOURCE = (ROOT / "beeldbel" / "config.py").read_text(encoding="utf-8")


def comments(cls: type[Any]) -> dict[str, list[str]]:
    """The ``#:`` lines directly above each field of ``cls``."""
    body = SOURCE.split(f"class {cls.__name__}", 1)[1]
    found: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in body.splitlines()[1:]:
        stripped = line.strip()
        if line and not line.startswith((" ", "\t")):
            break
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+):", stripped)
        if match:
            found[match.group(1)] = pending
        pending = []
    return found


def toml_value(value: Any) -> str:
    if isinstance(value, Secret):
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def main() -> None:
    out = [
        "# Beeldbel configuration: every key with its default.",
        "# Any key can also be set as BEELDBEL_<SECTION>_<KEY>",
        "# (lists and tables as JSON).",
        "# Unknown keys stop the start with a message naming them.",
        "",
    ]
    config = Config()
    tables: list[str] = []
    for section in dataclasses.fields(Config):
        value = getattr(config, section.name)
        notes = comments(type(value))
        out.append(f"[{section.name}]")
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if item and isinstance(item, tuple) and isinstance(item[0], Topic):
                tables.append("# The topics a citizen can choose, in this order.")
                for topic in item:
                    tables += [
                        f"[[{section.name}.{field.name}]]",
                        f"code = {toml_value(topic.code)}",
                        f"nl = {toml_value(topic.nl)}",
                        f"en = {toml_value(topic.en)}",
                    ]
                continue
            for note in notes.get(field.name, []):
                out.append(f"# {note}")
            out.append(f"{field.name} = {toml_value(item)}")
        out.append("")
    out += tables
    (ROOT / "config.example.toml").write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
