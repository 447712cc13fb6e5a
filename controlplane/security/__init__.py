"""The floor's security: signing keys and the JWKS, the secret box, the server's
secret, CSRF, cookie settings, rate limits and the audit log."""
