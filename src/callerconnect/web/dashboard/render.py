"""Rendering dashboard pages: templates, translations, numbers in the reader's language."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_decimal, format_percent
from fastapi.responses import HTMLResponse

from callerconnect.domain.access import Right, allowed
from callerconnect.i18n.dashboard import _, dashboard_translator
from callerconnect.service.accounts import SignedIn
from callerconnect.web.dashboard.charts import Chart, bar_chart
from callerconnect.web.dashboard.tables import SUPPRESSED, Table
from callerconnect.web.templating import template_environment, translator

LANGUAGES = ("en", "fr")
OTHER = {"en": "fr", "fr": "en"}
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
CSS_URL = "/static/dashboard.css"


NAVIGATION: Sequence[tuple[str, str, Right]] = (
    ("/dashboard", _("Overview"), Right.OVERVIEW),
    ("/dashboard/comments", _("Comments"), Right.COMMENTS),
    ("/dashboard/queues", _("Work queues"), Right.QUEUES),
    ("/dashboard/users", _("Accounts"), Right.USERS),
    ("/dashboard/audit", _("Audit log"), Right.AUDIT),
)

TOO_FEW = _("too few to show")


@dataclass
class PageContext:
    """What every page needs to draw its frame."""

    lang: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    signed_in: SignedIn | None = None

    def url(self, path: str | None = None, lang: str | None = None, **extra: str) -> str:
        items = [(k, v) for k, v in self.query if k != "lang" and k not in extra]
        items.append(("lang", lang or self.lang))
        items += list(extra.items())
        return f"{path or self.path}?{urlencode(items)}"


class Renderer:
    def __init__(self, agency_name: dict[str, str]) -> None:
        self.agency = agency_name
        self.env = template_environment()

    def gettext(self, lang: str) -> Callable[..., str]:
        return translator(dashboard_translator(lang))

    def number(self, value: Any, kind: str, lang: str) -> str:
        if value is SUPPRESSED:
            return self.gettext(lang)(TOO_FEW)
        if value is None:
            return "–"
        if kind == "rate":
            return format_percent(value, format="#,##0.0 %", locale=lang)
        if kind == "mean":
            return format_decimal(value, format="0.00", locale=lang)
        if kind == "seconds":
            return format_decimal(value, format="#,##0", locale=lang) + " s"
        if kind == "count":
            return format_decimal(value, locale=lang)
        return str(value)

    def label(self, value: Any, column: str, lang: str) -> str:
        translate = self.gettext(lang)
        if value is None:
            return translate("(none)")
        if column == "hour":
            return f"{int(value):02d}:00"
        if column == "question":
            from callerconnect.web.dashboard.overview import QUESTION_LABELS

            return translate(QUESTION_LABELS.get(str(value), str(value)))
        return str(value)

    def cell(self, value: Any, kind: str, column: str, lang: str) -> str:
        if kind == "text":
            return self.label(value, column, lang)
        return self.number(value, kind, lang)

    def chart(self, table: Table, lang: str) -> Chart | None:
        translate = self.gettext(lang)
        label_column = table.chart_label or ""
        return bar_chart(
            table,
            translate(table.title),
            lambda value, kind: self.number(value, kind, lang),
            lambda value: self.label(value, label_column, lang),
            lambda high, high_value, low, low_value: translate(
                "Highest: %(high)s (%(high_value)s). Lowest: %(low)s (%(low_value)s).",
                high=high,
                high_value=high_value,
                low=low,
                low_value=low_value,
            ),
        )

    def render(
        self, template: str, page: PageContext, status: int = 200, **context: Any
    ) -> HTMLResponse:
        translate = self.gettext(page.lang)
        nav = []
        if page.signed_in is not None:
            role = page.signed_in.account.role
            nav = [
                {"href": page.url(href), "text": translate(text), "current": href == page.path}
                for href, text, right in NAVIGATION
                if allowed(role, right)
            ]
        body = self.env.get_template(f"dashboard/{template}.html").render(
            lang=page.lang,
            other=OTHER[page.lang],
            other_name=LANGUAGE_NAMES[OTHER[page.lang]],
            switch_href=page.url(lang=OTHER[page.lang]),
            agency=self.agency[page.lang],
            css=CSS_URL,
            nav=nav,
            signed_in=page.signed_in,
            page=page,
            _=translate,
            render=self,
            **context,
        )
        return HTMLResponse(
            body, status_code=status, headers={"Cache-Control": "no-store", "Vary": "Cookie"}
        )
