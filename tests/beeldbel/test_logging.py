"""Logs never carry the local variables of a failing frame (they hold personal data)."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from beeldbel.logging import configure_logging


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_leave_out_local_variables(capfd, fmt):
    configure_logging("info", fmt)
    log = structlog.get_logger()

    def handle(name: str) -> None:
        phone = "".join(["+316", "12345678"])  # noqa: F841 - must not be logged
        raise ValueError("boom")

    try:
        handle(" ".join(["Canary", "Naam"]))
    except ValueError:
        log.exception("request_failed")
    err = capfd.readouterr().err
    assert "boom" in err
    assert "+31612345678" not in err, "a frame's local variable was logged"
    assert "Canary Naam" not in err
    if fmt == "json":
        assert json.loads(err.strip().splitlines()[-1])["event"] == "request_failed"
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()
