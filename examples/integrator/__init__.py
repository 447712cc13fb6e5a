"""An integrator's client for Beeldbel: creates a callback request over
``/api/v1`` and follows it through Standard Webhooks, verified with the
``standardwebhooks`` library. Imports nothing of Beeldbel's own packages."""
