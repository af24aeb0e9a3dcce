"""Open data on the web, without login (contract section 10).

- ``GET /open-data``: the public page (``?lang=fr``), from the latest publication: the
  headline figures as server-rendered SVG charts with a data table beside each, the
  trend by month, links to every file, the catalogs and the methodology. No script.
  With several agencies (contract section 11) it shows each agency's own figures and
  files under its name, and ``GET /open-data/<agency>`` is one agency's page.
- ``GET /open-data/<file>`` (the default agency) and ``GET /open-data/<agency>/<file>``:
  the files of the latest publication.
- ``GET /api/feed/dcat-us/1.1.json`` and ``GET /api/feed/dcat-ap/2.1.1.json``: the catalogs.

Everything is cacheable: a strong ``ETag`` (the SHA-256 of the bytes), ``Last-Modified``
(the publication's time) and ``304`` when the client already has it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from importlib import resources
from typing import Annotated, Any

from babel.numbers import format_decimal, format_percent
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from callerconnect.bootstrap import Application
from callerconnect.opendata.catalog import CatalogEntry, dcat_ap, dcat_us
from callerconnect.opendata.package import CORE_FILES, GEOJSON_FILE, media_type
from callerconnect.service.publishing import latest_file, latest_files
from callerconnect.web.openapi import NOT_MODIFIED, error_answer, html_answer, media_answer

CSS_URL = "/static/open-data.css"
DCAT_US = "/api/feed/dcat-us/1.1.json"
DCAT_AP = "/api/feed/dcat-ap/2.1.1.json"
FILE_NAMES = (*CORE_FILES, GEOJSON_FILE)
CACHE_CONTROL = "public, max-age=300"

SUPPRESSED_TEXT = {"en": "x — too few responses to publish", "fr": "x — trop peu de réponses"}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Open data: caller texts and survey results",
        "intro": (
            "People who call the police about a less urgent matter get texts: a "
            "confirmation with their case number, a notice when help is delayed, and a "
            "short voluntary survey afterwards. These are the results, by month, for "
            "anyone to view, download and reuse. No one can be identified from them."
        ),
        "agencies": "Police services",
        "last": "Last published",
        "partial": "The latest month is not over: its figures stand as of that date.",
        "none": "Nothing has been published yet.",
        "headline": "Latest month",
        "trends": "Trends by month",
        "month": "Month",
        "downloads": "Download the data",
        "catalogs": "Catalogs for data portals",
        "methodology": "How the figures are made and protected",
        "methodology_link": "Methodology (English)",
        "protection": (
            "A mean or share based on fewer than %(k)s answers is written x, and so are "
            "enough other figures that none can be worked out from the totals. No comment, "
            "case number, phone number or date finer than a month is published."
        ),
        "licence": "Licence",
        "calls_texted": "Calls whose caller was texted",
        "surveys_sent": "Surveys sent",
        "responses": "Surveys answered",
        "response_rate": "Response rate",
        "overall_share_positive": "Satisfied overall (answered 4 or 5 of 5)",
        "overall_mean": "Overall satisfaction (mean, 1 to 5)",
        "chart": "Bar chart; the same figures are in the table beside it.",
        "switch": "Français",
        "footer": "In an emergency, call 9-1-1.",
    },
    "fr": {
        "title": "Données ouvertes : textos aux appelants et résultats du sondage",
        "intro": (
            "Les personnes qui appellent la police pour une affaire moins urgente "
            "reçoivent des textos : une confirmation avec leur numéro de dossier, un avis "
            "en cas de retard et, ensuite, un court sondage facultatif. Voici les "
            "résultats, par mois, que chacun peut consulter, télécharger et réutiliser. "
            "Personne ne peut y être identifié."
        ),
        "agencies": "Services de police",
        "last": "Dernière publication",
        "partial": "Le dernier mois n'est pas terminé : ses chiffres sont ceux de cette date.",
        "none": "Rien n'a encore été publié.",
        "headline": "Dernier mois",
        "trends": "Tendances par mois",
        "month": "Mois",
        "downloads": "Télécharger les données",
        "catalogs": "Catalogues pour les portails de données",
        "methodology": "Comment les chiffres sont établis et protégés",
        "methodology_link": "Méthodologie (français)",
        "protection": (
            "Une moyenne ou une part qui repose sur moins de %(k)s réponses est écrite x, "
            "tout comme assez d'autres chiffres pour qu'aucun ne puisse être déduit des "
            "totaux. Aucun commentaire, numéro de dossier, numéro de téléphone ni date plus "
            "fine que le mois n'est publié."
        ),
        "licence": "Licence",
        "calls_texted": "Appels dont l'appelant a reçu un texto",
        "surveys_sent": "Sondages envoyés",
        "responses": "Sondages remplis",
        "response_rate": "Taux de réponse",
        "overall_share_positive": "Satisfaits dans l'ensemble (4 ou 5 sur 5)",
        "overall_mean": "Satisfaction globale (moyenne, de 1 à 5)",
        "chart": "Diagramme à barres; les mêmes chiffres sont dans le tableau à côté.",
        "switch": "English",
        "footer": "En cas d'urgence, composez le 9-1-1.",
    },
}

#: The headline figures: column, kind (count, share or mean) and the chart's top value.
HEADLINES = (
    ("calls_texted", "count"),
    ("responses", "count"),
    ("response_rate", "share"),
    ("overall_share_positive", "share"),
    ("overall_mean", "mean"),
)
TREND_MONTHS = 12


@dataclass(frozen=True)
class Bar:
    label: str
    text: str
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class Chart:
    column: str
    title: str
    bars: list[Bar]
    width: int
    latest: str


@dataclass(frozen=True)
class AgencyFigures:
    """One agency's part of the page: its latest publication's figures and files."""

    id: str
    anchor: str
    """The prefix of the element ids in its part ("" with one agency), so that ids stay
    unique and each agency's part can be linked to."""
    name: str
    publication: Any
    published: str | None
    headline: dict[str, Any] | None
    charts: list[Chart]
    folder: str
    files: list[str]
    methodology: str


def format_value(value: Any, kind: str, lang: str) -> str:
    locale = "fr_CA" if lang == "fr" else "en_CA"
    if value == "x":
        return SUPPRESSED_TEXT[lang]
    if value is None:
        return "—"
    if kind == "share":
        return format_percent(value, format="#,##0.0%", locale=locale)
    if kind == "mean":
        return format_decimal(value, format="0.00", locale=locale)
    return format_decimal(value, locale=locale)


def chart(column: str, kind: str, rows: Sequence[dict[str, Any]], lang: str) -> Chart:
    recent = list(rows)[-TREND_MONTHS:]
    numbers = [r[column] for r in recent if isinstance(r.get(column), int | float)]
    top = {"share": 1.0, "mean": 5.0}.get(kind) or max([*numbers, 1])
    bars = []
    step, plot = 40, 120
    for i, row in enumerate(recent):
        value = row.get(column)
        height = plot * value / top if isinstance(value, int | float) and top else 0.0
        bars.append(
            Bar(
                label=str(row["month"]),
                text=format_value(value, kind, lang),
                x=i * step + 8,
                y=plot - height + 10,
                height=height,
            )
        )
    latest = format_value(recent[-1].get(column), kind, lang) if recent else "—"
    return Chart(column, TEXT[lang][column], bars, max(len(recent) * step + 16, 60), latest)


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest() + '"'


def cached(
    request: Request, content: bytes, media: str, modified: Any | None, etag: str | None = None
) -> Response:
    """``content`` with validators, or an empty ``304`` when the client has it already."""
    tag = etag or _etag(content)
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified, usegmt=True)
    wanted = request.headers.get("if-none-match", "")
    if tag in (t.strip() for t in wanted.split(",")) or wanted.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=media, headers=headers)


# --- what the routes declare in the OpenAPI document -------------------------------------

Language = Annotated[
    str, Query(description="the page's language, en or fr (anything else is ignored)")
]
_FILE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, from the latest publication; with several agencies, an "
        "agency's id names its open-data page",
        "content": {
            kind: {"schema": {}}
            for kind in (
                "text/csv",
                "application/json",
                "text/markdown",
                "application/geo+json",
                "text/html",
            )
        },
    },
    304: NOT_MODIFIED,
    404: error_answer("No such file, or nothing published yet"),
}


def build_opendata_router(application: Application) -> APIRouter:
    settings = application.settings
    base = settings.public_base_url
    db = application.db
    agencies = tuple(settings.agency_ids)
    templates = Environment(
        loader=PackageLoader("callerconnect.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css = (resources.files("callerconnect.web") / "static" / "open-data.css").read_bytes()
    router = APIRouter(tags=["open data"])

    def files_base(agency: str) -> str:
        # One agency: the plain URLs; several: one folder per agency.
        if len(agencies) == 1:
            return f"{base}/open-data/"
        return f"{base}/open-data/{agency}/"

    def entries() -> list[CatalogEntry]:
        found = []
        for agency in agencies:
            latest = latest_files(db, agency)
            if latest is None:
                continue
            row, names = latest
            monthly = latest_file(db, agency, "monthly.json")
            months = [r["month"] for r in json.loads(monthly.content)] if monthly else []
            found.append(
                CatalogEntry(
                    agency_id=agency,
                    agency_name_en=settings.for_agency(agency).agency_name.en,
                    agency_name_fr=settings.for_agency(agency).agency_name.fr,
                    landing_page=f"{base}/open-data",
                    files_base=files_base(agency),
                    file_names=[n for n in FILE_NAMES if n in names],
                    first_month=months[0] if months else row.period,
                    last_month=row.period,
                    modified=row.published_at.date(),
                    license_url=settings.opendata.license_url,
                    contact_email=settings.opendata.contact_email,
                )
            )
        return found

    @router.get(
        CSS_URL,
        summary="The open-data page's stylesheet",
        response_class=Response,
        responses={200: media_answer("CSS", "text/css", {}), 304: NOT_MODIFIED},
    )
    async def stylesheet(request: Request) -> Response:
        return cached(request, css, "text/css", None)

    @router.get(
        "/open-data",
        summary="The public open-data page (bilingual, no script)",
        response_class=HTMLResponse,
        responses={200: html_answer("The page"), 304: NOT_MODIFIED},
    )
    async def page(request: Request, lang: Language = "en") -> Response:
        language = "fr" if lang == "fr" else "en"
        return await run_in_threadpool(render_page, request, language, agencies)

    def agency_figures(agency: str, lang: str) -> AgencyFigures:
        """What the page shows of one agency, from its latest publication."""
        own = settings.for_agency(agency)
        latest = latest_files(db, agency)
        monthly_file = latest_file(db, agency, "monthly.json") if latest else None
        rows: list[dict[str, Any]] = json.loads(monthly_file.content) if monthly_file else []
        # One agency keeps the plain URLs (and ids) it always had; several, a folder each.
        folder = "/open-data/" if len(agencies) == 1 else f"/open-data/{agency}/"
        return AgencyFigures(
            id=agency,
            anchor="" if len(agencies) == 1 else f"{agency}-",
            name=own.agency_name.fr if lang == "fr" else own.agency_name.en,
            publication=latest[0] if latest else None,
            published=(
                latest[0].published_at.astimezone(own.tz).strftime("%Y-%m-%d %H:%M")
                if latest
                else None
            ),
            headline=rows[-1] if rows else None,
            charts=[chart(column, kind, rows, lang) for column, kind in HEADLINES] if rows else [],
            folder=folder,
            files=[n for n in FILE_NAMES if latest and n in latest[1]],
            methodology=f"{folder}methodology_{lang}.md",
        )

    def render_page(request: Request, lang: str, shown: Sequence[str]) -> Response:
        """The page of ``shown``: every agency at ``/open-data``, or the one agency of
        ``/open-data/<agency>``. With one agency in the deployment, its page as it was."""
        text = TEXT[lang]
        sections = [agency_figures(agency, lang) for agency in shown]
        html = (
            templates.get_template("opendata/page.html")
            .render(
                lang=lang,
                other="en" if lang == "fr" else "fr",
                path=request.url.path,
                t=text,
                # The header names the agency when the page is one agency's.
                agency=sections[0].name if len(sections) == 1 else None,
                sections=sections,
                # Several agencies: the headings step down one level under each name.
                level=2 if len(sections) == 1 else 3,
                css=CSS_URL,
                media_type=media_type,
                protection=text["protection"] % {"k": settings.opendata.min_responses},
                catalogs=[DCAT_US, DCAT_AP],
                licence_url=settings.opendata.license_url,
                licence_title=settings.opendata.license_title,
                published_any=any(s.publication for s in sections),
            )
            .encode("utf-8")
        )
        published = [s.publication.published_at for s in sections if s.publication]
        return cached(request, html, "text/html; charset=utf-8", max(published, default=None))

    def serve_file(request: Request, agency: str, name: str) -> Response:
        if agency not in agencies or name not in FILE_NAMES:
            return _not_found(name)
        stored = latest_file(db, agency, name)
        if stored is None:
            return _not_found(name)
        media = media_type(name)
        if media.startswith("text/"):
            media += "; charset=utf-8"
        return cached(request, stored.content, media, stored.published_at, f'"{stored.sha256}"')

    @router.get(
        "/open-data/{name}",
        summary="A file of the latest open-data publication, or an agency's open-data page",
        response_class=Response,
        responses=_FILE_ANSWERS,
    )
    async def open_data_file(request: Request, name: str, lang: Language = "en") -> Response:
        if len(agencies) > 1 and name in agencies:
            language = "fr" if lang == "fr" else "en"
            return await run_in_threadpool(render_page, request, language, (name,))
        return await run_in_threadpool(serve_file, request, settings.agency_id, name)

    @router.get(
        "/open-data/{agency}/{name}",
        summary="A file of an agency's latest open-data publication",
        response_class=Response,
        responses=_FILE_ANSWERS,
    )
    async def agency_file(request: Request, agency: str, name: str) -> Response:
        return await run_in_threadpool(serve_file, request, agency, name)

    def feed(kind: str, request: Request) -> Response:
        found = entries()
        if kind == "us":
            document = dcat_us(base + DCAT_US, found)
        else:
            document = dcat_ap(base + DCAT_AP, f"{base}/open-data", found)
        content = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
        modified = max((e.modified for e in found), default=None)
        media = "application/json" if kind == "us" else "application/ld+json"
        return cached(request, content, media, None if modified is None else _midnight(modified))

    @router.get(
        DCAT_US,
        summary="DCAT-US 1.1 catalog of the open data",
        response_class=Response,
        responses={
            200: media_answer(
                "DCAT-US 1.1 catalog (Project Open Data data.json)",
                "application/json",
                {"type": "object"},
            ),
            304: NOT_MODIFIED,
        },
    )
    async def dcat_us_feed(request: Request) -> Response:
        return await run_in_threadpool(feed, "us", request)

    @router.get(
        DCAT_AP,
        summary="DCAT-AP 2.1.1 catalog of the open data (JSON-LD)",
        response_class=Response,
        responses={
            200: media_answer(
                "DCAT-AP 2.1.1 catalog, JSON-LD", "application/ld+json", {"type": "object"}
            ),
            304: NOT_MODIFIED,
        },
    )
    async def dcat_ap_feed(request: Request) -> Response:
        return await run_in_threadpool(feed, "ap", request)

    return router


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _not_found(name: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": "not_found",
                "message": "no such open-data file; see /open-data for the list",
            }
        },
        status_code=404,
    )
