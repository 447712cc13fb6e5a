"""The server's own secret key: from config, or generated once into the data dir."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from aiohttp import web

from beeldbel.config import Config


def load_secret_key(config: Config) -> bytes:
    configured = config.security.secret_key.reveal()
    if configured:
        return configured.encode()
    path = Path(config.server.data_dir) / "secret_key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


SECRET_KEY = web.AppKey("secret_key", bytes)
