"""The Beeldbel control plane: callback requests, staff console, citizen pages, API."""
