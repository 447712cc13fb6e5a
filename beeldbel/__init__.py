"""Pieces both Beeldbel processes use: configuration, logging, tokens."""
