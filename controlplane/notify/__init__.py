"""Telling citizens by e-mail over SMTP and by text message: a call's join link,
and the confirmation of a new request with its status link."""
