"""Telling citizens their join link: e-mail over SMTP and text messages."""
