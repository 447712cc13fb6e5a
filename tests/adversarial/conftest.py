"""The adversarial suites reuse the control plane's in-process media node."""

from tests.controlplane.conftest import media, media_server

__all__ = ["media", "media_server"]
