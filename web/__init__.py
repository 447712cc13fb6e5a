"""Beeldbel's web assets, installed as ``beeldbel.web``; see :mod:`beeldbel.assets`."""
