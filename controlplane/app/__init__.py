"""The top of the control plane: the app factory and its middlewares, the only
place that wires the domains and the floor together."""

from controlplane.app.factory import create_app, create_metrics_app

__all__ = ["create_app", "create_metrics_app"]
