"""What every server-rendered page shares: one Jinja environment over the package's
templates (autoescaped, strict about missing values) and gettext with ``%(name)s``
values filled in."""

from __future__ import annotations

import gettext
from collections.abc import Callable
from typing import Any

import jinja2


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("callerconnect.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates ship with the package and change only with it (a restart): no
        # look at the file's modification time on every page.
        auto_reload=False,
    )


def translator(translations: gettext.NullTranslations) -> Callable[..., str]:
    """``_(message, **values)``: the message in the catalogue's language, filled in."""

    def translate(message: str, **values: Any) -> str:
        text = translations.gettext(message)
        return text % values if values else text

    return translate
