"""A whole publication as named files (pure): the contract's CSV tables and data package,
the same tables as JSON, the data dictionary, the methodology in both languages, and
the latest month by district as GeoJSON when boundaries are given."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callerconnect.opendata.fields import (
    DICTIONARY_FIELDS,
    QuestionInfo,
    by_district_fields,
    monthly_fields,
    table_schema,
)
from callerconnect.opendata.formats import dump_json, to_csv, to_json
from callerconnect.opendata.geojson import districts_geojson
from callerconnect.opendata.methodology import methodology
from callerconnect.opendata.tables import Tables

MEDIA_TYPES = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".md": "text/markdown",
    ".geojson": "application/geo+json",
}


def media_type(name: str) -> str:
    return next(kind for suffix, kind in MEDIA_TYPES.items() if name.endswith(suffix))


@dataclass(frozen=True)
class PackageInfo:
    agency_id: str
    agency_name_en: str
    agency_name_fr: str
    first_month: str
    last_month: str
    partial_month: str | None
    """The month published "as it stands so far" (not over yet), if any."""
    min_responses: int
    license_url: str
    license_title: str
    questions: Sequence[QuestionInfo]

    @property
    def name(self) -> str:
        return f"{self.agency_id}-caller-survey-results"

    @property
    def title(self) -> str:
        return f"{TITLE_EN} — {self.agency_name_en} / {TITLE_FR} — {self.agency_name_fr}"

    @property
    def description(self) -> str:
        return f"{self.description_en}\n\n{self.description_fr}"

    @property
    def description_en(self) -> str:
        text = (
            f"Texts sent by {self.agency_name_en} to people who called about less urgent "
            f"matters, and their survey answers, by month, district and priority, "
            f"{self.first_month} to {self.last_month}. Aggregated and de-identified: a "
            f"figure on fewer than {self.min_responses} answers is suppressed (x), with "
            "complementary suppression."
        )
        if self.partial_month:
            text += f" {self.partial_month} is published as it stands so far."
        return text

    @property
    def description_fr(self) -> str:
        text = (
            f"Textos envoyés par {self.agency_name_fr} aux personnes ayant appelé pour une "
            f"affaire moins urgente, et leurs réponses au sondage, par mois, district et "
            f"priorité, de {self.first_month} à {self.last_month}. Données agrégées et "
            f"dépersonnalisées : un chiffre reposant sur moins de {self.min_responses} "
            "réponses est supprimé (x), avec suppression complémentaire."
        )
        if self.partial_month:
            text += f" {self.partial_month} est publié tel qu'il est à ce jour."
        return text


TITLE_EN = "Caller texts and survey results"
TITLE_FR = "Textos aux appelants et résultats du sondage"

BY_DISTRICT = "monthly_by_district"
MONTHLY = "monthly"
DICTIONARY = "data_dictionary"

# The files every publication has, in the order the page lists them.
CORE_FILES = (
    "datapackage.json",
    f"{BY_DISTRICT}.csv",
    f"{MONTHLY}.csv",
    f"{BY_DISTRICT}.json",
    f"{MONTHLY}.json",
    f"{DICTIONARY}.csv",
    "methodology_en.md",
    "methodology_fr.md",
)
GEOJSON_FILE = "districts_latest.geojson"


def build_files(
    info: PackageInfo, tables: Tables, boundaries: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """Every file of the publication by name; the same inputs give the same bytes."""
    by_district = by_district_fields(info.questions)
    monthly = monthly_fields(info.questions)
    files = {
        f"{BY_DISTRICT}.csv": to_csv(by_district, tables.by_district),
        f"{MONTHLY}.csv": to_csv(monthly, tables.monthly),
        f"{BY_DISTRICT}.json": to_json(by_district, tables.by_district),
        f"{MONTHLY}.json": to_json(monthly, tables.monthly),
        f"{DICTIONARY}.csv": _dictionary({BY_DISTRICT: by_district, MONTHLY: monthly}),
    }
    for language in ("en", "fr"):
        files[f"methodology_{language}.md"] = methodology(
            language,
            agency=info.agency_name_en if language == "en" else info.agency_name_fr,
            first_month=info.first_month,
            last_month=info.last_month,
            partial_month=info.partial_month,
            min_responses=info.min_responses,
            questions=info.questions,
        ).encode("utf-8")
    if boundaries is not None:
        files[GEOJSON_FILE] = dump_json(
            districts_geojson(boundaries, tables.by_district, by_district, info.last_month)
        )
    files["datapackage.json"] = dump_json(_datapackage(info, by_district, monthly))
    return {name: files[name] for name in sorted(files, key=_file_order)}


def _file_order(name: str) -> tuple[int, str]:
    return (CORE_FILES.index(name) if name in CORE_FILES else len(CORE_FILES), name)


def _dictionary(resources: Mapping[str, Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([f.name for f in DICTIONARY_FIELDS])
    for resource, fields in resources.items():
        for described in fields:
            writer.writerow(
                [
                    resource,
                    described.name,
                    described.type,
                    described.description_en,
                    described.description_fr,
                ]
            )
    return buffer.getvalue().encode("utf-8")


def _datapackage(info: PackageInfo, by_district: Sequence[Any], monthly: Sequence[Any]) -> Any:
    def resource(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "path": f"{name}.csv",
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "description": description,
            "schema": schema,
        }

    return {
        "profile": "tabular-data-package",
        "name": info.name,
        "title": info.title,
        "description": info.description,
        "licenses": [{"name": "OGL", "path": info.license_url, "title": info.license_title}],
        "sources": [{"title": f"{info.agency_name_en} / {info.agency_name_fr}"}],
        "keywords": KEYWORDS_EN + KEYWORDS_FR,
        "resources": [
            resource(
                BY_DISTRICT,
                "One row per month, district and priority / Une ligne par mois, district "
                "et priorité",
                table_schema(by_district, ["month", "district", "priority"]),
            ),
            resource(
                MONTHLY,
                "Agency-wide totals, one row per month / Totaux du service, une ligne par mois",
                table_schema(monthly, ["month"]),
            ),
            resource(
                DICTIONARY,
                "Data dictionary / Dictionnaire de données",
                table_schema(DICTIONARY_FIELDS, ["resource", "field"]),
            ),
        ],
    }


KEYWORDS_EN = ["police", "public safety", "customer satisfaction", "survey", "text messages"]
KEYWORDS_FR = ["police", "sécurité publique", "satisfaction", "sondage", "messages texte"]
