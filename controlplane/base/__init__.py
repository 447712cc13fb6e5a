"""What every domain uses: errors, page rendering, translations, metrics, the
config key and the client's address."""
