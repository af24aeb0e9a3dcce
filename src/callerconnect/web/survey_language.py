"""The survey pages' language: English or French, from the link, the invitation or the
browser's ``Accept-Language``."""

from __future__ import annotations

LANGUAGES = ("en", "fr")
OTHER = {"en": "fr", "fr": "en"}
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


def negotiate(accept_language: str | None) -> str | None:
    """The preferred of English and French in an ``Accept-Language`` header, if any."""
    best: str | None = None
    best_q = 0.0
    for part in (accept_language or "").split(","):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > best_q:
            best, best_q = primary, quality
    return best


def pick_language(explicit: str | None, invitation: str | None, accept_language: str | None) -> str:
    for candidate in (explicit, invitation):
        if candidate is not None and candidate in LANGUAGES:
            return candidate
    return negotiate(accept_language) or "en"
