"""Catalogs of the web pages (gettext domain ``pages``), beside the SMS catalog.

The pages have their own domain because their rules differ from the texts': an SMS
catalog entry must stay in the GSM-7 alphabet (``ç``, ``ê``, ``ô`` would triple the
cost of a text, and the SMS catalog's tests refuse them), whereas a page is plain
UTF-8 and French must be written properly there. Same mechanics as
:func:`callerconnect.i18n.translator`: the ``.po`` files are the only source,
compiled in memory by Babel on first use, fuzzy entries left out.

Placeholders are Python named placeholders, ``%(name)s``.
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

from callerconnect.i18n import LANGUAGES

PAGES_DOMAIN = "pages"

__all__ = ["PAGES_DOMAIN", "load_pages_catalog", "pages_catalog_file", "pages_translator"]


def pages_catalog_file(language: str) -> Traversable:
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}; available: {', '.join(LANGUAGES)}")
    package = resources.files("callerconnect.i18n")
    return package / "locale" / language / "LC_MESSAGES" / f"{PAGES_DOMAIN}.po"


def load_pages_catalog(language: str) -> Catalog:
    with pages_catalog_file(language).open("rb") as po:
        return read_po(po, locale=language, domain=PAGES_DOMAIN)


@functools.cache
def pages_translator(language: str) -> gettext.NullTranslations:
    """The page translations for ``language`` (``"en"`` or ``"fr"``), compiled once."""
    mo = BytesIO()
    write_mo(mo, load_pages_catalog(language), use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)
