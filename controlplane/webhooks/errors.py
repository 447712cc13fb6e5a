"""What goes wrong when managing webhook endpoints (a ``ValueError``: the CLI
prints its message; an admin page maps it to a 422)."""

from __future__ import annotations


class EndpointInvalid(ValueError):
    """An endpoint cannot be made or changed so; the message says why."""
