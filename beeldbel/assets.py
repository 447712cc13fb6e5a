"""Where the web assets are: templates, static files and translations.

They ship as the package ``beeldbel.web`` (the ``web/`` folder, installed as
package data), so a wheel serves the same files as a checkout.
"""

from importlib.resources import files
from pathlib import Path

WEB = Path(str(files("beeldbel.web")))
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
I18N = WEB / "i18n"
