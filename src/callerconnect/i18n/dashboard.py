"""Catalogs of the internal dashboard (gettext domain ``dashboard``), English and French.

Same mechanics as the pages catalog (:mod:`callerconnect.i18n.pages`): the ``.po``
files are the only source, compiled in memory by Babel on first use, fuzzy entries
left out. A domain of its own so the dashboard's many labels stay apart from what the
public reads.
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

DASHBOARD_DOMAIN = "dashboard"


def dashboard_catalog_file(language: str) -> Traversable:
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}; available: {', '.join(LANGUAGES)}")
    package = resources.files("callerconnect.i18n")
    return package / "locale" / language / "LC_MESSAGES" / f"{DASHBOARD_DOMAIN}.po"


def load_dashboard_catalog(language: str) -> Catalog:
    with dashboard_catalog_file(language).open("rb") as po:
        return read_po(po, locale=language, domain=DASHBOARD_DOMAIN)


@functools.cache
def dashboard_translator(language: str) -> gettext.NullTranslations:
    mo = BytesIO()
    write_mo(mo, load_dashboard_catalog(language), use_fuzzy=False)
    mo.seek(0)
    return gettext.GNUTranslations(mo)


def _(message: str) -> str:
    """Marks a dashboard message for the catalogue (babel extracts calls to ``_``); the
    page translates it when it renders, in the viewer's language."""
    return message
