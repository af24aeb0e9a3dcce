"""English and French gettext catalogs, loaded straight from their ``.po`` files.

The ``.po`` files are the only source: Babel compiles each one in memory the first
time it is asked for, so there is no compiled ``.mo`` to commit or forget to
rebuild, and no build step. Entries marked fuzzy are left out (gettext then falls
back to the English msgid), so a half-reviewed translation never reaches a caller;
the tests also refuse fuzzy or empty entries.

Placeholders are Python named placeholders, ``%(name)s``, the ``python-format``
flavour that Babel and Jinja2's i18n extension understand.
"""

from __future__ import annotations

import functools
import gettext
from importlib import resources
from importlib.resources.abc import Traversable
from io import BytesIO

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "callerconnect"
LANGUAGES: tuple[str, ...] = ("en", "fr")

__all__ = ["DOMAIN", "LANGUAGES", "catalog_file", "load_catalog", "translator"]


def catalog_file(language: str) -> Traversable:
    """The ``.po`` file of ``language``; a ValueError for a language we do not ship."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}; available: {', '.join(LANGUAGES)}")
    return resources.files(__name__) / "locale" / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_catalog(language: str) -> Catalog:
    """Parse the ``.po`` file of ``language`` into a Babel catalog (not cached)."""
    with catalog_file(language).open("rb") as po:
        return read_po(po, locale=language, domain=DOMAIN)


@functools.cache
def translator(language: str) -> gettext.NullTranslations:
    """The gettext translations for ``language`` (``"en"`` or ``"fr"``), compiled once.

    Raises ValueError for any other language, so a typo fails loudly instead of
    silently sending English.
    """
    mo = BytesIO()
    write_mo(mo, load_catalog(language), use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)
